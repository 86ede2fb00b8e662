//! `kiln-controller`: InferenceService manifests into running revisions, traffic splits and
//! status, on one machine with local processes.
//!
//! - [`controller`]: apply, delete, rollout actions and status, over the router's table, the
//!   autoscaler and the [`local`] backend; [`store`] persists its records atomically.
//! - [`revision`], [`service`], [`traffic`]: revisions, service records and KServe's traffic
//!   semantics, as data and pure functions.
//! - [`platform`]: starts everything `kiln up` runs and wires it together.
//! - [`admin`]: the control API the CLI talks to.

pub mod admin;
pub mod controller;
pub mod local;
pub mod platform;
pub mod revision;
pub mod service;
pub mod store;
pub mod traffic;
