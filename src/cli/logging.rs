//! Log output: `RUST_LOG` (as tracing-subscriber's `EnvFilter` reads it) selects what is
//! logged to stderr; nothing is logged without it. Every line goes through the process-wide
//! redactor first, so no secret value a run knows of reaches the log.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the subscriber when `RUST_LOG` is set.
pub fn init() {
    if std::env::var_os(EnvFilter::DEFAULT_ENV).is_none() {
        return;
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    // Fails only when a subscriber is already installed: then that one logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_writer(Redacting(std::io::stderr))
        .with_ansi(ansi)
        .try_init();
}

/// Makes writers that collect one event's text and write it redacted when dropped.
struct Redacting<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.0.make_writer(),
            buffer: Vec::new(),
        }
    }
}

/// One event's text, redacted on its way out.
struct RedactingWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let redacted = relapse::run::redact::redact_global(&text);
        self.buffer.clear();
        self.inner.write_all(redacted.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_redacted() {
        let mut r = relapse::run::redact::Redactor::new();
        r.add_plain("log-canary-91c2e7");
        relapse::run::redact::remember(&r);
        let sink = Sink::default();
        let make = Redacting({
            let sink = sink.clone();
            move || sink.clone()
        });
        {
            let mut w = make.make_writer();
            // Written in pieces, as a formatter may: the value spans two writes.
            w.write_all(b"DEBUG connecting with log-can").unwrap();
            w.write_all(b"ary-91c2e7 and bG9nLWNhbmFyeS05MWMyZTc=\n")
                .unwrap();
        }
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out, "DEBUG connecting with <redacted> and <redacted>\n");
    }
}
