//! The exercise's graded suite, run against the solution. There is one copy of the suite; it lives
//! with the exercise, where the learner reads it.

use capstone_solution as subject;

#[path = "../../../exercises/capstone/tests/suite/mod.rs"]
mod suite;
