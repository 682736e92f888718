//! Exercises every `wasi:keyvalue` function against the host's configured buckets, asserting as
//! it goes; the exit code tells the host test what happened.
//!
//! - `suite BUCKET MAX_VALUE`: every function, the limits and the errors; exits 0.
//! - `bench BUCKET COUNT`: COUNT set+get pairs of 100-byte values, timed; prints the rate.
//! - `set BUCKET KEY VALUE`, `expect BUCKET KEY VALUE|-`, `incr BUCKET KEY DELTA EXPECTED`:
//!   single operations for tests across processes; exit 0 when done (or as expected), 1 when a
//!   value differs, 2 when the host returned an error (printed).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "wasi:keyvalue/imports",
    generate_all,
});

use wasi::keyvalue::{atomics, batch, store};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match args.as_slice() {
        ["suite", bucket, max_value] => {
            suite(bucket, max_value.parse().expect("MAX_VALUE is a number"));
            println!("suite passed");
            0
        }
        ["bench", bucket, count] => outcome(bench(bucket, count.parse().expect("COUNT is a number"))),
        ["set", bucket, key, value] => outcome(open(bucket).and_then(|b| b.set(key, value.as_bytes())).map(|()| 0)),
        ["expect", bucket, key, value] => outcome(open(bucket).and_then(|b| b.get(key)).map(|got| {
            let want = (*value != "-").then(|| value.as_bytes().to_vec());
            if got == want {
                0
            } else {
                println!("`{key}` holds {got:?}, not {want:?}");
                1
            }
        })),
        ["incr", bucket, key, delta, expected] => outcome(
            open(bucket)
                .and_then(|b| atomics::increment(&b, key, delta.parse().expect("DELTA is a number")))
                .map(|got| if got.to_string() == *expected { 0 } else { println!("got {got}"); 1 }),
        ),
        other => panic!("unknown arguments {other:?}"),
    };
    wasip2::cli::exit::exit_with_code(code);
}

/// COUNT set+get pairs one after another, as a request handler would make them.
fn bench(bucket: &str, count: u32) -> Result<u8, store::Error> {
    let bucket = open(bucket)?;
    let value = vec![7u8; 100];
    let start = std::time::Instant::now();
    for i in 0..count {
        let key = format!("bench-{i}");
        bucket.set(&key, &value)?;
        assert_eq!(bucket.get(&key)?.as_deref(), Some(value.as_slice()));
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{count} set+get pairs in {seconds:.3} s: {:.0} pairs/s", f64::from(count) / seconds);
    Ok(0)
}

fn open(bucket: &str) -> Result<store::Bucket, store::Error> {
    store::open(bucket)
}

fn outcome(result: Result<u8, store::Error>) -> u8 {
    result.unwrap_or_else(|err| {
        println!("error: {err:?}");
        2
    })
}

fn other_error<T: std::fmt::Debug>(result: Result<T, store::Error>, containing: &str) {
    match result {
        Err(store::Error::Other(message)) if message.contains(containing) => {}
        unexpected => panic!("expected an error containing {containing:?}, got {unexpected:?}"),
    }
}

fn suite(name: &str, max_value: usize) {
    // Opening: declared buckets, the empty name as `default`, unknown ones refused.
    let bucket = store::open(name).expect("open the bucket");
    assert!(matches!(store::open("no-such-bucket"), Err(store::Error::NoSuchStore)));
    if name == "default" {
        store::open("").expect("the empty name opens `default`");
    }
    clear(&bucket);

    // store: get, set, exists, delete.
    assert_eq!(bucket.get("alpha").unwrap(), None);
    bucket.set("alpha", b"one").unwrap();
    assert_eq!(bucket.get("alpha").unwrap(), Some(b"one".to_vec()));
    assert!(bucket.exists("alpha").unwrap());
    bucket.set("alpha", b"two").unwrap();
    assert_eq!(bucket.get("alpha").unwrap(), Some(b"two".to_vec()));
    bucket.delete("alpha").unwrap();
    assert!(!bucket.exists("alpha").unwrap());
    assert_eq!(bucket.get("alpha").unwrap(), None);
    bucket.delete("alpha").expect("deleting a missing key is not an error");

    // Any key and any bytes round-trip.
    for key in ["user:42", "a.b", "with space", "é", "=x", ".dot"] {
        let value: Vec<u8> = key.bytes().chain([0, 255]).collect();
        bucket.set(key, &value).unwrap();
        assert_eq!(bucket.get(key).unwrap(), Some(value), "{key}");
    }
    other_error(bucket.set("", b"x"), "must not be empty");

    // atomics: increment, from absent and from a stored counter; bad counters and overflow.
    assert_eq!(atomics::increment(&bucket, "counter", 5).unwrap(), 5);
    assert_eq!(atomics::increment(&bucket, "counter", 3).unwrap(), 8);
    assert_eq!(bucket.get("counter").unwrap(), Some(b"8".to_vec()));
    bucket.set("word", b"ten").unwrap();
    other_error(atomics::increment(&bucket, "word", 1), "not a decimal number");
    bucket.set("max", u64::MAX.to_string().as_bytes()).unwrap();
    other_error(atomics::increment(&bucket, "max", 1), "overflows");

    // batch: set-many, get-many (with a missing key), delete-many.
    let entries: Vec<(String, Vec<u8>)> = vec![("b1".into(), b"x".to_vec()), ("b2".into(), b"y".to_vec())];
    batch::set_many(&bucket, &entries).unwrap();
    let got = batch::get_many(&bucket, &["b1".into(), "missing".into(), "b2".into()]).unwrap();
    assert_eq!(got, vec![Some(entries[0].clone()), None, Some(entries[1].clone())]);
    batch::delete_many(&bucket, &["b1".into(), "b2".into()]).unwrap();
    assert!(!bucket.exists("b1").unwrap() && !bucket.exists("b2").unwrap());

    // Limits: the largest value allowed, one byte more.
    bucket.set("big", &vec![7; max_value]).unwrap();
    assert_eq!(bucket.get("big").unwrap().map(|v| v.len()), Some(max_value));
    other_error(bucket.set("big", &vec![7; max_value + 1]), "over the limit");
    other_error(batch::set_many(&bucket, &[("big2".into(), vec![7; max_value + 1])]), "over the limit");

    // list-keys: pages and their cursor, which resumes after the page's last key (keys deleted
    // from a page already read shift nothing), and a cursor never handed out.
    clear(&bucket);
    let keys: Vec<(String, Vec<u8>)> = (0..1100).map(|i| (format!("page-{i:04}"), vec![1])).collect();
    batch::set_many(&bucket, &keys).unwrap();
    let first = bucket.list_keys(None).unwrap();
    assert_eq!(first.keys.len(), 1000);
    let cursor = first.cursor.expect("a second page");
    bucket.delete(&first.keys[0]).unwrap();
    let second = bucket.list_keys(Some(cursor)).unwrap();
    assert_eq!((second.keys.len(), second.cursor), (100, None));
    assert_eq!(second.keys[0], "page-1000");
    let mut all: Vec<String> = first.keys.into_iter().chain(second.keys).collect();
    all.sort();
    assert_eq!(all, keys.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    other_error(bucket.list_keys(Some(cursor ^ 1)), "unknown or expired");
    clear(&bucket);
}

/// Deletes every key in the bucket.
fn clear(bucket: &store::Bucket) {
    loop {
        let page = bucket.list_keys(None).unwrap();
        if page.keys.is_empty() {
            return;
        }
        batch::delete_many(bucket, &page.keys).unwrap();
    }
}
