//! Exercises every `wasi:blobstore` function, asserting as it goes; the exit code tells the host
//! test what happened.
//!
//! - `suite MAX_OBJECT`: every function, the limits and the errors; exits 0.
//! - `write CONTAINER OBJECT VALUE` (creating the container if needed) and
//!   `expect CONTAINER OBJECT VALUE|-`: single operations for tests across processes; exit 0 when
//!   done (or as expected), 1 when the object differs, 2 when the host returned an error.
//! - `write-late CONTAINER OBJECT VALUE`: like `write`, in the order of wasmCloud's components:
//!   `write-data` first, then the value's stream, then `finish`.
//! - `escape PATH`: every entry point that takes a container name, given `PATH` and other names
//!   that are paths (absolute, `..`, trailing `/`, empty), must fail; exits 0 when all did.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "wasi:blobstore/imports",
    generate_all,
});

use wasi::blobstore::{blobstore, container, types};
use wasi::io::streams::StreamError;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match args.as_slice() {
        ["suite", max] => {
            suite(max.parse().expect("MAX_OBJECT is a number"));
            println!("suite passed");
            0
        }
        ["write", name, object, value] => outcome((|| {
            let container = match blobstore::container_exists(name)? {
                true => blobstore::get_container(name)?,
                false => blobstore::create_container(name)?,
            };
            write(&container, object, value.as_bytes())?;
            Ok(0)
        })()),
        ["expect", name, object, value] => outcome((|| {
            let container = blobstore::get_container(name)?;
            let got = match container.has_object(object)? {
                true => Some(read(&container, object, 0, u64::MAX)?),
                false => None,
            };
            let want = (*value != "-").then(|| value.as_bytes().to_vec());
            Ok(if got == want { 0 } else { println!("`{object}` holds {got:?}"); 1 })
        })()),
        ["write-late", name, object, value] => outcome((|| {
            let container = match blobstore::container_exists(name)? {
                true => blobstore::get_container(name)?,
                false => blobstore::create_container(name)?,
            };
            let outgoing = types::OutgoingValue::new_outgoing_value();
            let stream = outgoing.outgoing_value_write_body().map_err(|()| "the body was taken")?;
            container.write_data(object, &outgoing)?;
            stream.blocking_write_and_flush(value.as_bytes()).map_err(|err| format!("{err:?}"))?;
            drop(stream);
            types::OutgoingValue::finish(outgoing)?;
            Ok(0)
        })()),
        ["escape", path] => {
            escape(path);
            println!("every escape was refused");
            0
        }
        other => panic!("unknown arguments {other:?}"),
    };
    wasip2::cli::exit::exit_with_code(code);
}

fn outcome(result: Result<u8, String>) -> u8 {
    result.unwrap_or_else(|err| {
        println!("error: {err}");
        2
    })
}

/// Writes `data` as `name` through an outgoing value's stream.
fn write(container: &container::Container, name: &str, data: &[u8]) -> Result<(), String> {
    let value = types::OutgoingValue::new_outgoing_value();
    let stream = value.outgoing_value_write_body().map_err(|()| "the body was taken")?;
    for chunk in data.chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|err| match err {
            StreamError::LastOperationFailed(err) => err.to_debug_string(),
            StreamError::Closed => "closed".to_owned(),
        })?;
    }
    drop(stream);
    container.write_data(name, &value)?;
    types::OutgoingValue::finish(value)
}

/// Reads `start..=end` of `name` whole.
fn read(container: &container::Container, name: &str, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let value = container.get_data(name, start, end)?;
    types::IncomingValue::incoming_value_consume_sync(value)
}

fn err_containing<T: std::fmt::Debug>(result: Result<T, String>, containing: &str) {
    match result {
        Err(message) if message.contains(containing) => {}
        unexpected => panic!("expected an error containing {containing:?}, got {unexpected:?}"),
    }
}

fn suite(max: usize) {
    for name in ["photos", "archive"] {
        if blobstore::container_exists(name).unwrap() {
            blobstore::delete_container(name).unwrap();
        }
    }

    // Containers: create, exists, get, name, info, and the errors.
    assert!(!blobstore::container_exists("photos").unwrap());
    let photos = blobstore::create_container("photos").unwrap();
    assert!(blobstore::container_exists("photos").unwrap());
    err_containing(blobstore::create_container("photos"), "already exists");
    err_containing(blobstore::create_container("bad name"), "cannot be a container name");
    err_containing(blobstore::get_container("nope"), "there is no container `nope`");
    assert_eq!(photos.name().unwrap(), "photos");
    let info = photos.info().unwrap();
    assert_eq!(info.name, "photos");
    assert!(info.created_at > 1_600_000_000, "created-at is seconds since the epoch");
    let same = blobstore::get_container("photos").unwrap();
    assert_eq!(same.name().unwrap(), "photos");

    // Objects: write, has, info, read whole and by range, sync and as a stream.
    write(&photos, "cat.png", b"meow-bytes").unwrap();
    assert!(photos.has_object("cat.png").unwrap());
    assert!(!photos.has_object("dog.png").unwrap());
    let meta = photos.object_info("cat.png").unwrap();
    assert_eq!((meta.name.as_str(), meta.container.as_str(), meta.size), ("cat.png", "photos", 10));
    let whole = photos.get_data("cat.png", 0, u64::MAX).unwrap();
    assert_eq!(whole.size(), 10);
    assert_eq!(types::IncomingValue::incoming_value_consume_sync(whole).unwrap(), b"meow-bytes");
    assert_eq!(read(&photos, "cat.png", 2, 4).unwrap(), b"ow-");
    let streamed = photos.get_data("cat.png", 5, 100).unwrap();
    let stream = types::IncomingValue::incoming_value_consume_async(streamed).unwrap();
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(3) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(err) => panic!("{err:?}"),
        }
    }
    assert_eq!(bytes, b"bytes");
    err_containing(read(&photos, "cat.png", 20, 30), "past the end");
    err_containing(read(&photos, "cat.png", 5, 4), "start after end");
    err_containing(read(&photos, "missing", 0, 10), "there is no object `missing`");
    err_containing(photos.object_info("missing"), "there is no object");
    write(&photos, "cat.png", b"replaced").unwrap();
    assert_eq!(read(&photos, "cat.png", 0, u64::MAX).unwrap(), b"replaced");

    // Any object name.
    for name in ["albums/2024/a b.jpg", ".hidden", "..", "é"] {
        write(&photos, name, name.as_bytes()).unwrap();
        assert_eq!(read(&photos, name, 0, u64::MAX).unwrap(), name.as_bytes(), "{name}");
    }
    err_containing(write(&photos, "", b"x"), "must not be empty");

    // Listing as a stream: read some, skip some, read the rest.
    photos.clear().unwrap();
    let names: Vec<String> = (0..7).map(|i| format!("item-{i}")).collect();
    for name in &names {
        write(&photos, name, b"x").unwrap();
    }
    let listing = photos.list_objects().unwrap();
    let (first, end) = listing.read_stream_object_names(3).unwrap();
    assert_eq!((first.len(), end), (3, false));
    assert_eq!(listing.skip_stream_object_names(2).unwrap(), (2, false));
    let (rest, end) = listing.read_stream_object_names(100).unwrap();
    assert_eq!((rest.len(), end), (2, true));
    let mut seen: Vec<String> = first.into_iter().chain(rest).collect();
    seen.sort();
    assert_eq!(seen, ["item-0", "item-1", "item-2", "item-5", "item-6"]);

    // Copy and move, within and across containers.
    let archive = blobstore::create_container("archive").unwrap();
    let id = |container: &str, object: &str| types::ObjectId {
        container: container.to_owned(),
        object: object.to_owned(),
    };
    blobstore::copy_object(&id("photos", "item-0"), &id("archive", "copy")).unwrap();
    assert!(photos.has_object("item-0").unwrap() && archive.has_object("copy").unwrap());
    blobstore::move_object(&id("photos", "item-1"), &id("archive", "moved")).unwrap();
    assert!(!photos.has_object("item-1").unwrap() && archive.has_object("moved").unwrap());
    blobstore::move_object(&id("photos", "item-2"), &id("photos", "renamed")).unwrap();
    assert!(!photos.has_object("item-2").unwrap() && photos.has_object("renamed").unwrap());
    err_containing(blobstore::copy_object(&id("photos", "item-0"), &id("nowhere", "x")), "there is no container `nowhere`");
    err_containing(blobstore::copy_object(&id("photos", "absent"), &id("archive", "x")), "there is no object `absent`");

    // Deleting: one (a missing one is fine), several, everything.
    photos.delete_object("item-3").unwrap();
    photos.delete_object("never-there").unwrap();
    photos.delete_objects(&["item-4".to_owned(), "item-5".to_owned()]).unwrap();
    assert!(!photos.has_object("item-3").unwrap() && !photos.has_object("item-5").unwrap());
    photos.clear().unwrap();
    let (left, end) = photos.list_objects().unwrap().read_stream_object_names(100).unwrap();
    assert!(left.is_empty() && end);

    // The size limit, and an outgoing value's body taken once.
    write(&photos, "largest", &vec![1; max]).unwrap();
    assert_eq!(photos.object_info("largest").unwrap().size, max as u64);
    err_containing(write(&photos, "too-large", &vec![1; max + 1]), "larger than the limit");
    assert!(!photos.has_object("too-large").unwrap());
    let value = types::OutgoingValue::new_outgoing_value();
    let _stream = value.outgoing_value_write_body().unwrap();
    assert!(value.outgoing_value_write_body().is_err());

    // Deleting containers.
    blobstore::delete_container("archive").unwrap();
    assert!(!blobstore::container_exists("archive").unwrap());
    err_containing(blobstore::delete_container("archive"), "there is no container");
    err_containing(archive.has_object("copy"), "there is no container");
}

/// Tries every entry point that takes a container name with names that are paths.
fn escape(path: &str) {
    let safe = match blobstore::container_exists("safe").unwrap() {
        true => blobstore::get_container("safe").unwrap(),
        false => blobstore::create_container("safe").unwrap(),
    };
    write(&safe, "planted", b"from the guest").unwrap();
    let id = |container: &str, object: &str| types::ObjectId {
        container: container.to_owned(),
        object: object.to_owned(),
    };
    let with_slash = format!("{path}/");
    let parent = format!("{path}/..");
    for bad in [path, &with_slash, &parent, "..", "../escaped", ".", "", "/", "safe/", "a/b", "safe\\x"] {
        let refused = "cannot be a container name";
        err_containing(blobstore::container_exists(bad), refused);
        err_containing(blobstore::get_container(bad), refused);
        err_containing(blobstore::create_container(bad), refused);
        err_containing(blobstore::delete_container(bad), refused);
        for object in ["secret.txt", "planted", "x"] {
            err_containing(blobstore::copy_object(&id("safe", "planted"), &id(bad, object)), refused);
            err_containing(blobstore::copy_object(&id(bad, object), &id("safe", "stolen")), refused);
            err_containing(blobstore::move_object(&id("safe", "planted"), &id(bad, object)), refused);
            err_containing(blobstore::move_object(&id(bad, object), &id("safe", "stolen")), refused);
        }
    }
    assert!(!safe.has_object("stolen").unwrap(), "nothing was copied out");
    assert!(safe.has_object("planted").unwrap(), "a refused move deleted nothing");
    // Object names are any text, but never a path: they stay in their container.
    for object in ["../../secret.txt", "/etc/passwd", "..", "a/../../b"] {
        write(&safe, object, b"inside").unwrap();
        assert_eq!(read(&safe, object, 0, u64::MAX).unwrap(), b"inside");
    }
    err_containing(safe.has_object(&"o".repeat(1025)), "longer than the limit");
}
