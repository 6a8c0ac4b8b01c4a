//! Unit tests of the GitHub collectors.
