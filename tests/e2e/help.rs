//! Help that reads: examples verbatim at 80 columns, a short example in -h, exit codes and
//! variables named, typo'd subcommands refused before any engine or database call.

