//! Overclaims of signing keys: validity windows, stray keys, unsafe key files.
