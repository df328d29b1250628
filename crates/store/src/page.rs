//! Keyset pagination shared by every listing (history, API keys, audit events): the opaque page
//! token, the fetch limit, and the split of fetched rows into a page.
//!
//! Every list is newest first by `(time, id)` descending, where the time is the row's
//! `created_at` (history, keys) or `at` (audit). A token names the last row served; the next
//! page holds rows strictly after it, so rows written meanwhile neither repeat nor shift pages.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bqai_core::model::Page;
use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDateTime};

/// The largest page served, whatever the caller asks for.
pub(crate) const MAX_PAGE_SIZE: u32 = 1000;

/// Where the previous page ended: the (time, id) of its last row. The next page holds rows
/// strictly after it in (time DESC, id DESC) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub at: NaiveDateTime,
    pub id: String,
}

impl Cursor {
    /// The opaque page token: URL-safe base64 of `"<time micros>:<id>"`.
    pub(crate) fn encode(&self) -> String {
        let micros = self.at.and_utc().timestamp_micros();
        URL_SAFE_NO_PAD.encode(format!("{micros}:{}", self.id))
    }

    /// Parses a token made by [`Cursor::encode`]; anything else is the caller's mistake.
    pub(crate) fn decode(token: &str) -> Result<Self> {
        let invalid = || Error::InvalidRequest("invalid page_token".to_owned());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        if id.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            at: at.naive_utc(),
            id: id.to_owned(),
        })
    }
}

/// How many rows to fetch for a page: one more than served, to learn whether another page
/// follows without a second query (so the last page says so instead of an empty extra page).
pub(crate) fn fetch_limit(page_size: u32) -> i64 {
    i64::from(page_size.clamp(1, MAX_PAGE_SIZE)) + 1
}

/// Splits the rows fetched with [`fetch_limit`] into the page (each row converted) and the
/// token for the next one.
pub(crate) fn into_page<R, T>(
    mut rows: Vec<R>,
    page_size: u32,
    cursor: impl Fn(&R) -> Cursor,
    convert: impl FnMut(R) -> Result<T>,
) -> Result<Page<T>> {
    let served = page_size.clamp(1, MAX_PAGE_SIZE) as usize;
    let next_page_token = if rows.len() > served {
        rows.truncate(served);
        rows.last().map(|r| cursor(r).encode())
    } else {
        None
    };
    let items = rows.into_iter().map(convert).collect::<Result<Vec<_>>>()?;
    Ok(Page {
        items,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456)
            .unwrap()
            .naive_utc();
        let c = Cursor {
            at: t,
            id: "0190-abc:with:colons".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn malformed_tokens_are_invalid_requests() {
        let garbage = [
            "",
            "%%%",
            "aGVsbG8",                                           // "hello": no separator
            &URL_SAFE_NO_PAD.encode("x:id"),                     // not a number
            &URL_SAFE_NO_PAD.encode("123:"),                     // no id
            &URL_SAFE_NO_PAD.encode(format!("{}:id", i64::MAX)), // out of chrono's range
        ];
        for token in garbage {
            match Cursor::decode(token) {
                Err(Error::InvalidRequest(m)) => assert_eq!(m, "invalid page_token"),
                other => panic!("{token:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn pages_carry_a_token_only_when_more_rows_follow() {
        let t = DateTime::from_timestamp_micros(0).unwrap().naive_utc();
        let cursor = |id: &&str| Cursor {
            at: t,
            id: (*id).to_owned(),
        };
        let convert = |id: &str| Ok(id.to_owned());
        let page = into_page(vec!["c", "b", "a"], 2, cursor, convert).unwrap();
        assert_eq!(page.items, ["c", "b"]);
        let token = Cursor::decode(page.next_page_token.as_deref().unwrap()).unwrap();
        assert_eq!(token.id, "b");
        let last = into_page(vec!["b", "a"], 2, cursor, convert).unwrap();
        assert_eq!((last.items.len(), last.next_page_token), (2, None));
        assert_eq!(fetch_limit(0), 2);
        assert_eq!(fetch_limit(u32::MAX), i64::from(MAX_PAGE_SIZE) + 1);
    }
}
