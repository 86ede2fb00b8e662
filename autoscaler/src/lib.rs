//! kiln-autoscaler: Knative KPA decisions from observed load (see issue 4).
