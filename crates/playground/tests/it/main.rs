//! Integration tests of the `pingone-aic-playground` command.

mod playground_cli;
