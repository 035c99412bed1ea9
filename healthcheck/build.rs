include!("../shared/build/commit.rs");
