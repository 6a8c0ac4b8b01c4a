//! The first hour: configuration messages, newcomer commands, the review
//! report and the deployment files, as a new user meets them.
