//! The running agent tells the truth: readiness that means evidence is kept,
//! metrics for every stream, reload, and collection on demand.
