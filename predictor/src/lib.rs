//! kiln-predictor
