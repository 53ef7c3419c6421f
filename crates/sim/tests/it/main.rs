//! Integration tests of the simulators as a standalone server.

mod pingone_sim_binary;
