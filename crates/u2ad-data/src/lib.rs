//! u2ad-data: where u2ad's sample data is, and its download when it is missing.
//!
//! The sample data (the public spine scans of `spine-t2/`, `templates/`, `fixtures/` and
//! `clinical-slices/`) is looked for in `$U2AD_DATA`, then in `shared/data` beside the project,
//! then in the download cache ([`locate`]). When it is in none of them, `u2ad demo` and the tests
//! download it into the cache: the public files listed with their sha256 in `data/SOURCES.tsv`,
//! each checked against its hash before it is put in place ([`fetch`]) with u2ad-io's atomic
//! writer. Its errors are u2ad-io's `FileError` (one line naming the file or URL and the problem).
//! It depends on no u2ad crate but u2ad-io, so every crate's tests can use it.

pub mod fetch;
pub mod locate;

pub use fetch::{fetch_sample_data, locate_or_fetch_sample_data, sample_data_dir_for_tests, sample_file, FetchSummary, RAW_GITHUB};
pub use locate::{cache_dir, cached_data_dir, is_complete, sample_data_dir, COMPLETE_MARKER};
