//! Fetching the sample data when it is not beside the project: the same public files as
//! `../shared/data`, listed with their repository, commit, path and sha256 in `SOURCES.tsv`
//! (a copy is compiled into the binary), downloaded from
//! `https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>` into a cache folder.
//!
//! Every file is checked against its sha256 before it is put in place: it is written to a
//! temporary sibling and renamed only when its hash matches, so the cache never holds a partial
//! or wrong file, and an interrupted fetch resumes where it stopped (files already present with
//! the right hash are not fetched again). The cache is complete when every listed file is there;
//! a marker file (`.complete`) then records it, so later look-ups do not hash 20 MB again. The
//! cache folder and the marker are [`crate::locate`]'s, which finds the data there (this module
//! depends on it, never the reverse). The tests' [`sample_file`] downloads here when the data is
//! nowhere.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use u2ad_io::staging::write_file_atomically;

use u2ad_io::{FileError, Result};
use crate::locate::{cached_data_dir, is_complete, sample_data_dir, COMPLETE_MARKER};

/// The list of sample files (`crates/u2ad-data/data/SOURCES.tsv`, a copy of
/// `../shared/data/SOURCES.tsv`), compiled in.
pub const SOURCES_TSV: &str = include_str!("../data/SOURCES.tsv");
/// Where files are downloaded from.
pub const RAW_GITHUB: &str = "https://raw.githubusercontent.com";

/// One file of the sample data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside the data folder, e.g. `spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz`.
    pub file: String,
    /// `owner/name` of the GitHub repository.
    pub repository: String,
    pub commit: String,
    /// Path inside the repository.
    pub path: String,
    /// Lower-case hex.
    pub sha256: String,
}

impl SourceFile {
    /// `<base>/<owner>/<repo>/<commit>/<path>`.
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}/{}/{}", base.trim_end_matches('/'), self.repository, self.commit, self.path)
    }
}

/// Parses a SOURCES.tsv (header `file repository commit path_in_repository sha256`).
pub fn parse_sources(text: &str, origin: &Path) -> Result<Vec<SourceFile>> {
    let bad = |line: usize, detail: &str| FileError::input(origin, format!("line {line}: {detail}"));
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.split('\t').collect::<Vec<_>>() == ["file", "repository", "commit", "path_in_repository", "sha256"] => {}
        _ => return Err(bad(1, "expected the header: file, repository, commit, path_in_repository, sha256 (tab-separated)")),
    }
    let mut files = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, repository, commit, path, sha256] = fields[..] else {
            return Err(bad(index + 1, &format!("{} fields instead of 5", fields.len())));
        };
        let repository = repository.strip_prefix("github.com/").ok_or_else(|| bad(index + 1, "the repository is not on github.com"))?;
        let is_hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
        if !is_hex(sha256, 64) || !is_hex(commit, 40) {
            return Err(bad(index + 1, "the commit must be 40 and the sha256 64 hex digits"));
        }
        if file.split('/').any(|part| part.is_empty() || part == "..") || file.starts_with('/') {
            return Err(bad(index + 1, &format!("unsafe file path '{file}'")));
        }
        files.push(SourceFile {
            file: file.to_string(),
            repository: repository.to_string(),
            commit: commit.to_string(),
            path: path.to_string(),
            sha256: sha256.to_ascii_lowercase(),
        });
    }
    Ok(files)
}

/// The compiled-in list.
pub fn sample_sources() -> Vec<SourceFile> {
    parse_sources(SOURCES_TSV, Path::new("SOURCES.tsv (compiled in)")).expect("the compiled-in SOURCES.tsv is valid")
}

/// The lower-case hex sha256 of a file.
pub fn sha256_of_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| FileError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(|e| FileError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`fetch_files`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchSummary {
    pub downloaded: usize,
    pub already_present: usize,
    pub bytes: u64,
}

/// Downloads every file missing from `dest` (or present with another hash) from `base`, checks
/// its sha256 and puts it in place atomically; `on_file(index, total, file)` is told each one.
/// The first failure (network, HTTP status, hash mismatch) stops with an error naming the URL.
pub fn fetch_files(dest: &Path, base: &str, files: &[SourceFile], on_file: &dyn Fn(usize, usize, &str)) -> Result<FetchSummary> {
    let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(20)).timeout_read(Duration::from_secs(60)).build();
    let mut summary = FetchSummary::default();
    for (index, source) in files.iter().enumerate() {
        on_file(index, files.len(), &source.file);
        let target = dest.join(&source.file);
        if target.is_file() && sha256_of_file(&target)? == source.sha256 {
            summary.already_present += 1;
            continue;
        }
        let url = source.url(base);
        let response = agent.get(&url).call().map_err(|e| match e {
            ureq::Error::Status(code, _) => FileError::input(&url, format!("download failed: HTTP {code}")),
            other => FileError::input(&url, format!("download failed: {other}")),
        })?;
        let mut bytes = Vec::new();
        response.into_reader().take(512 << 20).read_to_end(&mut bytes).map_err(|e| FileError::input(&url, format!("download interrupted: {e}")))?;
        let got = hex(&Sha256::digest(&bytes));
        if got != source.sha256 {
            return Err(FileError::input(
                &url,
                format!("sha256 {got} does not match the expected {} for {}; nothing written", source.sha256, source.file),
            ));
        }
        write_file_atomically(&target, &bytes)?;
        summary.downloaded += 1;
        summary.bytes += bytes.len() as u64;
    }
    Ok(summary)
}

/// Fetches the whole sample data into `dest` (from `base`, normally [`RAW_GITHUB`]) and marks it
/// complete.
pub fn fetch_sample_data(dest: &Path, base: &str, on_file: &dyn Fn(usize, usize, &str)) -> Result<FetchSummary> {
    fetch_listed(dest, base, &sample_sources(), on_file)
}

/// [`fetch_sample_data`] of the list `files` (the compiled-in list, or a test's).
pub(crate) fn fetch_listed(dest: &Path, base: &str, files: &[SourceFile], on_file: &dyn Fn(usize, usize, &str)) -> Result<FetchSummary> {
    let summary = fetch_files(dest, base, files, on_file)?;
    let marker = dest.join(COMPLETE_MARKER);
    let listing: String = files.iter().map(|f| format!("{}  {}\n", f.sha256, f.file)).collect();
    write_file_atomically(&marker, listing.as_bytes())?;
    Ok(summary)
}

/// The sample data folder: found beside the project or in `U2AD_DATA`
/// ([`crate::locate::sample_data_dir`]), else downloaded into the cache.
pub fn locate_or_fetch_sample_data(on_file: &dyn Fn(usize, usize, &str)) -> Result<PathBuf> {
    if let Some(dir) = crate::locate::sample_data_dir() {
        return Ok(dir);
    }
    let dest = cached_data_dir().ok_or_else(|| {
        FileError::input("sample data", "not found and no cache folder to download it to: set U2AD_DATA, U2AD_CACHE or HOME")
    })?;
    if !is_complete(&dest) {
        fetch_sample_data(&dest, RAW_GITHUB, on_file)?;
    }
    Ok(dest)
}

/// The sample data directory ([`sample_data_dir`]) for tests: when it is nowhere, it is downloaded
/// into the cache ([`cached_data_dir`]) with the sha256 checks of [`fetch_files`], once per
/// process, saying so in one line on stderr; a failed download panics with one line saying where
/// to put the data instead.
pub fn sample_data_dir_for_tests() -> PathBuf {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // Straight to stderr, so that the test harness does not hold the line back.
        let say = |line: &str| {
            let _ = writeln!(std::io::stderr(), "{line}");
        };
        found_or_downloaded(sample_data_dir(), cached_data_dir(), RAW_GITHUB, &sample_sources(), &say)
    })
    .clone()
    .unwrap_or_else(|message| panic!("{message}"))
}

/// `found`, else `cache` once complete, downloading `files` from `base` into it (and marking it
/// complete) when it is not, which `say` is told in one line; the error is the one line
/// [`sample_data_dir_for_tests`] panics with.
pub(crate) fn found_or_downloaded(
    found: Option<PathBuf>,
    cache: Option<PathBuf>,
    base: &str,
    files: &[SourceFile],
    say: &dyn Fn(&str),
) -> Result<PathBuf, String> {
    const INSTEAD: &str = "put the shared data at ../shared/data beside the project, or set U2AD_DATA to its folder";
    if let Some(dir) = found {
        return Ok(dir);
    }
    let Some(dest) = cache else {
        return Err(format!("sample data not found, and no cache folder to download it to (set U2AD_CACHE or HOME): {INSTEAD}"));
    };
    if is_complete(&dest) {
        return Ok(dest);
    }
    say(&format!("sample data not found: downloading its {} files (sha256-checked) into {}", files.len(), dest.display()));
    match fetch_listed(&dest, base, files, &|_, _, _| {}) {
        Ok(_) => Ok(dest),
        Err(error) => Err(format!("sample data not found and its download failed ({error}): {INSTEAD}").replace('\n', " ")),
    }
}

/// `path` relative to the sample data directory (tests).
pub fn sample_file(relative: impl AsRef<Path>) -> PathBuf {
    sample_data_dir_for_tests().join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn the_compiled_in_list_covers_the_shared_cohort() {
        let files = sample_sources();
        assert_eq!(files.len(), 35);
        let image = files.iter().find(|f| f.file == "spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz").unwrap();
        assert_eq!(
            image.url(RAW_GITHUB),
            "https://raw.githubusercontent.com/spinalcordtoolbox/spinalcordtoolbox/fd40f943a9ec0e15a237c84474e23706167d0928/testing/data/errsm_11/t2/t2.nii.gz"
        );
        assert_eq!(image.sha256, "72e8cbde2b32b9da4efb400ef9dcdddae39beeababdfd27ccbb7420281ae4a5b");
        assert_eq!(files.iter().filter(|f| f.file.starts_with("spine-t2/")).count(), 17);
    }

    #[test]
    fn a_bad_list_is_an_error_naming_the_line() {
        let origin = Path::new("x.tsv");
        let header = "file\trepository\tcommit\tpath_in_repository\tsha256\n";
        let err = parse_sources(&format!("{header}a\tgithub.com/o/r\tabc\tp\tdef\n"), origin).unwrap_err().to_string();
        assert!(err.contains("x.tsv") && err.contains("line 2") && err.contains("hex"), "{err}");
        let ok = format!("{header}../a\tgithub.com/o/r\t{}\tp\t{}\n", "a".repeat(40), "b".repeat(64));
        assert!(parse_sources(&ok, origin).unwrap_err().to_string().contains("unsafe"));
        assert!(parse_sources("nope\n", origin).unwrap_err().to_string().contains("line 1"));
    }

    /// Serves `files` (URL path → bytes) on 127.0.0.1 for `requests` requests; 404 otherwise.
    fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
                        stream.write_all(body).unwrap();
                        served += 1;
                    }
                    None => write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap(),
                }
            }
            served
        });
        (base, handle)
    }

    fn source(file: &str, content: &[u8]) -> SourceFile {
        SourceFile {
            file: file.to_string(),
            repository: "owner/repo".into(),
            commit: "c".repeat(40),
            path: format!("data/{}", file.rsplit('/').next().unwrap()),
            sha256: hex(&Sha256::digest(content)),
        }
    }

    #[test]
    fn downloads_are_checked_and_put_in_place_atomically() {
        let good = b"real MRI bytes".to_vec();
        let other = b"more real bytes".to_vec();
        let files = vec![source("spine-t2/a.nii.gz", &good), source("templates/b.txt", &other)];
        let url_path = |s: &SourceFile| format!("/owner/repo/{}/{}", s.commit, s.path);
        // The second file is served corrupted.
        let (base, server) = serve(vec![(url_path(&files[0]), good.clone()), (url_path(&files[1]), b"more real bytez".to_vec())], 2);
        let dest = tempfile::tempdir().unwrap();
        let err = fetch_files(dest.path(), &base, &files, &|_, _, _| {}).unwrap_err().to_string();
        assert_eq!(server.join().unwrap(), 2);
        assert!(err.contains(&format!("{base}/owner/repo/")) && err.contains("does not match the expected") && err.contains("templates/b.txt"), "{err}");
        assert_eq!(std::fs::read(dest.path().join("spine-t2/a.nii.gz")).unwrap(), good);
        assert!(!dest.path().join("templates/b.txt").exists(), "a corrupt file is never put in place");
        let leftovers: Vec<_> = std::fs::read_dir(dest.path().join("templates")).map(|d| d.count()).into_iter().collect();
        assert!(leftovers.iter().all(|&n| n == 0), "no temporary file is left");

        // A second run fetches only the missing file.
        let (base, server) = serve(vec![(url_path(&files[1]), other.clone())], 1);
        let seen = std::sync::Mutex::new(Vec::new());
        let summary = fetch_files(dest.path(), &base, &files, &|i, n, f| seen.lock().unwrap().push(format!("{}/{n} {f}", i + 1))).unwrap();
        assert_eq!(server.join().unwrap(), 1);
        assert_eq!(summary, FetchSummary { downloaded: 1, already_present: 1, bytes: other.len() as u64 });
        assert_eq!(seen.into_inner().unwrap(), ["1/2 spine-t2/a.nii.gz", "2/2 templates/b.txt"]);
        assert_eq!(sha256_of_file(&dest.path().join("templates/b.txt")).unwrap(), files[1].sha256);
    }

    #[test]
    fn a_missing_file_is_an_http_error_naming_the_url() {
        let files = vec![source("x/missing.bin", b"x")];
        let (base, server) = serve(vec![], 1);
        let dest = tempfile::tempdir().unwrap();
        let err = fetch_files(dest.path(), &base, &files, &|_, _, _| {}).unwrap_err().to_string();
        server.join().unwrap();
        assert!(err.contains("/owner/repo/") && err.contains("HTTP 404"), "{err}");
        assert!(!dest.path().join("x/missing.bin").exists());
    }

    #[test]
    fn missing_sample_data_is_downloaded_into_the_cache_for_tests() {
        // The lookup of `sample_data_dir_for_tests` with nothing found and an empty cache.
        let image = b"a spine scan".to_vec();
        let template = b"a template".to_vec();
        let files = vec![source("spine-t2/sub-x/anat/sub-x_T2w.nii.gz", &image), source("templates/t.txt", &template)];
        let url_path = |s: &SourceFile| format!("/owner/repo/{}/{}", s.commit, s.path);
        let cache = tempfile::tempdir().unwrap();
        let dest = cache.path().join("data");
        let (base, server) = serve(vec![(url_path(&files[0]), image.clone()), (url_path(&files[1]), template.clone())], 2);
        let said = std::sync::Mutex::new(Vec::new());
        let say = |line: &str| said.lock().unwrap().push(line.to_string());
        let dir = found_or_downloaded(None, Some(dest.clone()), &base, &files, &say).unwrap();
        assert_eq!(dir, dest);
        assert_eq!(*said.lock().unwrap(), [format!("sample data not found: downloading its 2 files (sha256-checked) into {}", dest.display())]);
        assert_eq!(std::fs::read(dest.join(&files[0].file)).unwrap(), image);
        assert_eq!(std::fs::read(dest.join(&files[1].file)).unwrap(), template);
        assert!(is_complete(&dest), "the completion marker is written");
        let marker = std::fs::read_to_string(dest.join(COMPLETE_MARKER)).unwrap();
        assert_eq!(marker, format!("{}  {}\n{}  {}\n", files[0].sha256, files[0].file, files[1].sha256, files[1].file));
        // Joined last: had nothing been downloaded, the server would still be waiting.
        assert_eq!(server.join().unwrap(), 2, "both files were downloaded");

        // Complete now: a second look-up downloads nothing (nothing listens at `gone`).
        let gone = format!("http://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
        assert_eq!(found_or_downloaded(None, Some(dest.clone()), &gone, &files, &say).unwrap(), dest);
        // Found data is used as it is, whatever the cache holds.
        let found = PathBuf::from("/somewhere/data");
        assert_eq!(found_or_downloaded(Some(found.clone()), None, &gone, &files, &say).unwrap(), found);
        assert_eq!(said.lock().unwrap().len(), 1, "nothing more is said when nothing is downloaded");

        // A failed download is one line saying where to put the data instead; nothing is marked.
        let empty = tempfile::tempdir().unwrap();
        let (base, server) = serve(vec![], 1);
        let err = found_or_downloaded(None, Some(empty.path().join("data")), &base, &files, &say).unwrap_err();
        server.join().unwrap();
        assert!(err.contains("HTTP 404") && err.contains("../shared/data") && err.contains("U2AD_DATA") && !err.contains('\n'), "{err}");
        assert!(!is_complete(&empty.path().join("data")));
        let err = found_or_downloaded(None, None, &gone, &files, &say).unwrap_err();
        assert!(err.contains("no cache folder") && err.contains("U2AD_DATA"), "{err}");
    }

    #[test]
    fn the_shared_data_matches_the_compiled_in_hashes() {
        // The same list the download checks: the shared copy must be byte-identical.
        let dir = sample_data_dir_for_tests();
        for file in sample_sources().iter().filter(|f| f.file.starts_with("spine-t2/sub-errsm30")) {
            assert_eq!(sha256_of_file(&dir.join(&file.file)).unwrap(), file.sha256, "{}", file.file);
        }
    }
}
