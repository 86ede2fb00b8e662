//! kiln-router: the data plane (see issue 3).
