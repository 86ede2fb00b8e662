//! `kiln-controller`: InferenceService manifests into running revisions, traffic splits and
//! status, on one machine with local processes.
//!
//! - [`reconcile`]: the one reconcile core both backends share: desired and observed state
//!   in, actions and KServe's status out, pure.
//! - [`controller`]: apply, delete, rollout actions and status over a [`backend::Backend`];
//!   events only put keys on the [`queue`]; [`store`] persists its records atomically.
//! - [`local_serving`]: `kiln up`'s backend, over the [`local`] replica processes, the
//!   router's table and the autoscaler.
//! - [`revision`], [`service`], [`traffic`]: revisions, service records and KServe's traffic
//!   semantics, as data and pure functions.
//! - [`platform`]: starts everything `kiln up` runs and wires it together.
//! - [`admin`]: the control API the CLI talks to.

pub mod admin;
pub mod backend;
pub mod controller;
pub mod local;
pub mod local_serving;
pub mod platform;
pub mod queue;
pub mod reconcile;
pub mod revision;
pub mod service;
pub mod store;
pub mod traffic;
