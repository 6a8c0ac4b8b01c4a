//! Overclaims of the writer: planted heads and clocks that go backwards.
