//! kiln-controller: desired state into running revisions (issue 5; in progress).

pub mod local;
