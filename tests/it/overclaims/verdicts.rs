//! Overclaims of verify's verdicts: no evidence, incomplete periods, pinned heads.
