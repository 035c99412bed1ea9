//! Configuration and engine errors a newcomer meets: each names its flag, variable, key or file,
//! suggests the near name, and is exit 2 before anything is touched.
