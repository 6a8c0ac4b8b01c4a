//! Overclaims of sample bundles and both of their verifiers.
