//! Overclaims of collectors: secrets, redirects and unbounded bodies.
