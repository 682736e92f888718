//! `kv-direct URL COUNT`: COUNT set+get pairs of 100-byte values on the JetStream KV bucket
//! `default`, one after another, made directly with async-nats: what bench/keyvalue.sh compares
//! a guest going through tempo against.

use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, count] = args.as_slice() else {
        anyhow::bail!("usage: kv-direct URL COUNT");
    };
    let count: u32 = count.parse()?;
    let client = async_nats::connect(url.as_str()).await?;
    let js = async_nats::jetstream::new(client);
    let bucket = match js.get_key_value("default").await {
        Ok(bucket) => bucket,
        Err(_) => {
            js.create_key_value(async_nats::jetstream::kv::Config {
                bucket: "default".into(),
                history: 1,
                ..Default::default()
            })
            .await?
        }
    };
    let value = vec![7u8; 100];
    let start = Instant::now();
    for i in 0..count {
        let key = format!("direct-{i}");
        bucket.put(&key, value.clone().into()).await?;
        let got = bucket.get(&key).await?;
        anyhow::ensure!(
            got.as_deref() == Some(value.as_slice()),
            "read back something else"
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    #[allow(clippy::print_stdout, reason = "the rate is the program's result")]
    {
        println!(
            "{count} set+get pairs in {seconds:.3} s: {:.0} pairs/s",
            f64::from(count) / seconds
        );
    }
    Ok(())
}
