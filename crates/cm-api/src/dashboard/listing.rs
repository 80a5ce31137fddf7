//! The containers list's query: filters, a search, a sort and a page, all query parameters
//! (`/?user=&type=&status=&q=&sort=&dir=&page=`), so they work without JavaScript and on many
//! hundreds of containers. Unknown sort keys and directions are ignored (the page says so);
//! nothing typed is ever put back into a page or a link unescaped (links are built here with
//! `serde_urlencoded`, and the templates escape them again for HTML).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::views::ContainerView;

/// Rows per page, unless `per` says otherwise.
pub const PAGE_SIZE: usize = 50;
/// The most rows one page may show.
pub const MAX_PAGE_SIZE: usize = 500;
/// The page sizes the list offers (any size from 1 to [`MAX_PAGE_SIZE`] works as `per`).
pub const PAGE_SIZES: [usize; 4] = [25, 50, 100, 200];
/// The longest search text used (longer text is cut).
const SEARCH_LIMIT: usize = 200;

/// The columns the list sorts by, as the `sort` parameter names them.
pub const SORT_KEYS: [&str; 6] = ["name", "user", "type", "status", "ssh_port", "created"];

/// The query parameters as sent (everything optional; empty means all).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    user: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: String,
    #[serde(default)]
    per: String,
}

/// The query once read: only known sort keys and directions, a page number from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListQuery {
    pub user: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub q: String,
    pub sort: &'static str,
    pub desc: bool,
    pub page: usize,
    /// Rows per page.
    pub per: usize,
}

/// What the query left aside, for a notice on the page.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// An unknown sort key was sent (the list is sorted by name instead).
    pub sort: bool,
    /// An unknown direction was sent (ascending instead).
    pub dir: bool,
    /// The page was not a number from 1 (page 1 instead), or past the last page (the last).
    pub page: bool,
    /// The page size was not a number from 1 to 500 (50 instead).
    pub per: bool,
}

/// One page of rows, and the links around it.
#[derive(Debug, Serialize)]
pub struct ListPage {
    pub rows: Vec<ContainerView>,
    /// Rows matching the filters and the search, on every page.
    pub matching: usize,
    pub page: usize,
    pub pages: usize,
    /// The first row's number on this page (from 1; 0 when there is none).
    pub first: usize,
    pub last: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// Links to nearby pages: `(number, link)`, with `None` for a gap.
    pub numbers: Vec<(Option<usize>, String)>,
    /// Per sort key: the link that sorts by it (toggling the direction when it is the current
    /// one) and the current direction (`ascending`, `descending` or empty).
    pub sorts: BTreeMap<&'static str, SortLink>,
}

/// A column header's sort link.
#[derive(Debug, Serialize)]
pub struct SortLink {
    pub key: &'static str,
    pub href: String,
    /// `ascending` or `descending` for the current sort, else empty (`aria-sort`).
    pub current: &'static str,
}

impl ListQuery {
    /// Reads the parameters; what is not understood is ignored and reported.
    pub fn read(params: &ListParams) -> (ListQuery, Ignored) {
        let mut ignored = Ignored::default();
        let sort = match params.sort.trim() {
            "" => "name",
            wanted => SORT_KEYS
                .iter()
                .copied()
                .find(|k| *k == wanted)
                .unwrap_or_else(|| {
                    ignored.sort = true;
                    "name"
                }),
        };
        let desc = match params.dir.trim() {
            "" | "asc" => false,
            "desc" => true,
            _ => {
                ignored.dir = true;
                false
            }
        };
        let page = match params.page.trim() {
            "" => 1,
            text => match text.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    ignored.page = true;
                    1
                }
            },
        };
        let per = match params.per.trim() {
            "" => PAGE_SIZE,
            text => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    ignored.per = true;
                    PAGE_SIZE
                }
            },
        };
        let q: String = params.q.trim().chars().take(SEARCH_LIMIT).collect();
        let query = ListQuery {
            user: params.user.trim().to_owned(),
            kind: params.kind.trim().to_owned(),
            status: params.status.trim().to_owned(),
            q,
            sort,
            desc,
            page,
            per,
        };
        (query, ignored)
    }

    /// True when a filter or a search narrows the list.
    pub fn narrowed(&self) -> bool {
        !(self.user.is_empty() && self.kind.is_empty() && self.status.is_empty() && self.q.is_empty())
    }

    /// True when a row passes the filters and the search (case-insensitive, on the name, user,
    /// type, status, image, URL and ports).
    pub fn matches(&self, row: &ContainerView) -> bool {
        if (!self.user.is_empty() && row.user != self.user)
            || (!self.kind.is_empty() && row.kind != self.kind)
            || (!self.status.is_empty() && row.status != self.status)
        {
            return false;
        }
        if self.q.is_empty() {
            return true;
        }
        let needle = self.q.to_lowercase();
        let ssh = row.ssh_port.map(|p| p.to_string()).unwrap_or_default();
        let port = row.port.to_string();
        [
            row.name.as_str(),
            row.user.as_str(),
            row.kind.as_str(),
            row.status,
            row.image.as_str(),
            row.url_path.as_str(),
            ssh.as_str(),
            port.as_str(),
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(&needle))
    }

    /// Filters, sorts and cuts one page out of `rows`. A page past the last shows the last one
    /// (and reports it in `ignored`).
    pub fn apply(&self, rows: Vec<ContainerView>, ignored: &mut Ignored) -> ListPage {
        let mut rows: Vec<ContainerView> = rows.into_iter().filter(|r| self.matches(r)).collect();
        // Ties are broken by the name, so the order is total and stable across pages.
        rows.sort_by(|a, b| {
            let by_key = match self.sort {
                "user" => a.user.cmp(&b.user),
                "type" => a.kind.cmp(&b.kind),
                "status" => a.status.cmp(b.status),
                // Containers without SSH sort after those with.
                "ssh_port" => match (a.ssh_port, b.ssh_port) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                },
                "created" => a.created_at.cmp(&b.created_at),
                _ => std::cmp::Ordering::Equal,
            };
            let ordered = by_key.then_with(|| a.name.cmp(&b.name));
            if self.desc { ordered.reverse() } else { ordered }
        });
        let matching = rows.len();
        let pages = matching.div_ceil(self.per).max(1);
        let page = if self.page > pages {
            ignored.page = true;
            pages
        } else {
            self.page
        };
        let start = (page - 1) * self.per;
        let rows: Vec<ContainerView> = rows.into_iter().skip(start).take(self.per).collect();
        let (first, last) = if rows.is_empty() {
            (0, 0)
        } else {
            (start + 1, start + rows.len())
        };
        let sorts = SORT_KEYS
            .iter()
            .map(|key| {
                let current = self.sort == *key;
                let link = SortLink {
                    key,
                    href: self.link(key, current && !self.desc, 1),
                    current: match (current, self.desc) {
                        (false, _) => "",
                        (true, false) => "ascending",
                        (true, true) => "descending",
                    },
                };
                (*key, link)
            })
            .collect();
        let numbers = page_numbers(page, pages)
            .into_iter()
            .map(|n| {
                (
                    n,
                    n.map(|n| self.link(self.sort, self.desc, n)).unwrap_or_default(),
                )
            })
            .collect();
        ListPage {
            rows,
            matching,
            page,
            pages,
            first,
            last,
            prev: (page > 1).then(|| self.link(self.sort, self.desc, page - 1)),
            next: (page < pages).then(|| self.link(self.sort, self.desc, page + 1)),
            numbers,
            sorts,
        }
    }

    /// This query's link (`/?...`), sorted by `sort` in `desc` order, at page `page`; empty
    /// parameters and defaults are left out.
    pub fn link(&self, sort: &str, desc: bool, page: usize) -> String {
        let page_text = page.to_string();
        let per_text = self.per.to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (name, value) in [
            ("user", self.user.as_str()),
            ("type", self.kind.as_str()),
            ("status", self.status.as_str()),
            ("q", self.q.as_str()),
        ] {
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        if sort != "name" {
            pairs.push(("sort", sort));
        }
        if desc {
            pairs.push(("dir", "desc"));
        }
        if self.per != PAGE_SIZE {
            pairs.push(("per", &per_text));
        }
        if page > 1 {
            pairs.push(("page", &page_text));
        }
        if pairs.is_empty() {
            return "/".to_owned();
        }
        format!("/?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
    }
}

/// The page numbers to link: the first, the last, and two either side of the current one, with
/// `None` for each gap.
fn page_numbers(page: usize, pages: usize) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut previous = 0;
    for n in 1..=pages {
        if n == 1 || n == pages || n.abs_diff(page) <= 2 {
            if n > previous + 1 {
                out.push(None);
            }
            out.push(Some(n));
            previous = n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap()
    }

    #[test]
    fn unknown_sort_keys_directions_and_pages_are_ignored_and_reported() {
        let (query, ignored) = ListQuery::read(&params(&[
            ("sort", "<script>"),
            ("dir", "sideways"),
            ("page", "-3"),
            ("per", "100000"),
        ]));
        assert_eq!((query.sort, query.desc, query.page), ("name", false, 1));
        assert_eq!(
            ignored,
            Ignored {
                sort: true,
                dir: true,
                page: true,
                per: true
            }
        );
        let (query, ignored) =
            ListQuery::read(&params(&[("sort", "created"), ("dir", "desc"), ("page", "2")]));
        assert_eq!((query.sort, query.desc, query.page), ("created", true, 2));
        assert_eq!(ignored, Ignored::default());
    }

    #[test]
    fn links_encode_what_was_typed_and_leave_defaults_out() {
        let (query, _) = ListQuery::read(&params(&[("q", "a&b=<c> \"d\""), ("user", "alice")]));
        assert_eq!(
            query.link("name", false, 1),
            "/?user=alice&q=a%26b%3D%3Cc%3E+%22d%22"
        );
        assert_eq!(
            query.link("status", true, 3),
            "/?user=alice&q=a%26b%3D%3Cc%3E+%22d%22&sort=status&dir=desc&page=3"
        );
        let (plain, _) = ListQuery::read(&ListParams::default());
        assert_eq!(plain.link("name", false, 1), "/");
    }

    #[test]
    fn nearby_pages_with_gaps() {
        assert_eq!(page_numbers(1, 1), vec![Some(1)]);
        assert_eq!(
            page_numbers(6, 12),
            vec![
                Some(1),
                None,
                Some(4),
                Some(5),
                Some(6),
                Some(7),
                Some(8),
                None,
                Some(12)
            ]
        );
    }
}
