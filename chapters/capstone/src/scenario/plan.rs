//! The requests the demo sends, drawn from a seed, and the check of every answer.
//!
//! A shop's day in a few thousand requests: product reads, category pages and news articles chosen
//! by Zipf's law (a few are most of the traffic), views counted, trending, the task board's counts,
//! price changes, new tasks and edited articles, a few logins, and one API client far over its
//! rate limit. Every configuration replays exactly the
//! same requests.

use std::sync::Mutex;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use capstone::analytics::Dashboard;
use capstone::listing::{ListingPage, listing_of};
use capstone::news::{Headline, LIST_SIZE, Trend, Views};
use capstone::products::ProductView;
use capstone::tasks::{Task, TaskStats};
use capstone::upstream::{CITIES, CURRENCIES, Rates, Weather};
use http_caching::upstream::Answer as Upstream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use sessions::accounts::{demo_name, demo_password};
use shared::clock::now_ms;
use shared::db::items::{CATEGORIES, category_of};
use shared::metrics::Latency;
use shared::staleness::Committed;
use shared_http::{Answer, Request};
use write_through::Article;

shared::variants! {
    /// What a request is, for the latency table.
    pub enum Class {
        /// `GET /products/{id}`.
        Product = ("product", "product read"),
        /// `GET /pages/{category}/{page}`.
        Page = ("page", "page read"),
        /// `GET /products?category=...&page=...`.
        Listing = ("listing", "listing read"),
        /// `GET /tasks/stats`.
        Stats = ("stats", "task counts"),
        /// `GET /news/{id}`.
        Article = ("article", "article read"),
        /// `GET /news?page=...`.
        News = ("news", "article list"),
        /// `GET /news?page=...&cache=bypass`.
        NewsBypass = ("news-bypass", "article list, bypass"),
        /// `POST /news/{id}/views`.
        View = ("view", "view counted"),
        /// `GET /news/trending`.
        Trending = ("trending", "trending"),
        /// `GET /analytics/dashboard`.
        Dashboard = ("dashboard", "dashboard"),
        /// `GET /weather/{city}` and `GET /rates/{currency}`.
        Upstream = ("upstream", "weather, rates"),
        /// A price change, a new task or an article edited.
        Write = ("write", "write"),
        /// `POST /login` (an Argon2 hash each).
        Login = ("login", "login"),
        /// The client over its limit.
        Greedy = ("greedy", "over the limit"),
    }
}

/// The user whose client sends far more than its limit.
pub const GREEDY: u32 = 0;

/// What the demo sends.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// Requests in all.
    pub requests: u64,
    /// Items in the catalogue.
    pub items: i64,
    /// Articles on the news site.
    pub articles: i64,
    /// Users sending (besides the greedy one).
    pub users: u32,
    /// Users with an account, who log in now and then.
    pub accounts: i64,
    /// The Zipf exponent of products and pages.
    pub skew: f64,
    /// The share of requests that write.
    pub write_ratio: f64,
    /// The share of requests the greedy client sends.
    pub greedy_ratio: f64,
    /// The draws' seed.
    pub seed: u64,
}

/// The requests, in order.
pub fn requests(mix: &Mix) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(mix.seed);
    let items = Zipf::new(mix.items as f64, mix.skew).expect("items >= 1");
    // A page: one of the categories' first ten pages.
    let pages = Zipf::new((CATEGORIES.len() * 10) as f64, mix.skew).expect("pages");
    let articles = Zipf::new(mix.articles as f64, mix.skew).expect("articles >= 1");
    (0..mix.requests)
        .map(|i| {
            let user = rng.random_range(1..=mix.users);
            let roll: f64 = rng.random();
            if roll < mix.greedy_ratio {
                let id = items.sample(&mut rng) as i64;
                return Request::get(GREEDY, format!("/products/{id}"));
            }
            if roll < mix.greedy_ratio + mix.write_ratio {
                return match rng.random_range(0..3) {
                    0 => {
                        let id = items.sample(&mut rng) as i64;
                        let price: i64 = rng.random_range(100..10_000);
                        let form = serde_json::json!({ "price_cents": price });
                        json(user, Method::PUT, format!("/products/{id}/price"), form)
                    }
                    1 => {
                        let title = format!("task {i} of user {user}");
                        let form = serde_json::json!({ "title": title });
                        json(user, Method::POST, "/tasks".to_string(), form)
                    }
                    _ => {
                        let id = articles.sample(&mut rng) as i64;
                        let form = serde_json::json!({ "title": format!("Article {id}, edit {i}"), "body": "Edited." });
                        json(user, Method::PUT, format!("/news/{id}"), form)
                    }
                };
            }
            match rng.random_range(0..1_000) {
                0..5 => {
                    let account = rng.random_range(1..=mix.accounts);
                    let form = serde_json::json!({ "name": demo_name(account), "password": demo_password(account) });
                    json(user, Method::POST, "/login".to_string(), form)
                }
                5..350 => Request::get(user, format!("/products/{}", items.sample(&mut rng) as i64)),
                350..400 => {
                    // Every category, or one; one of the first five pages.
                    let n = pages.sample(&mut rng) as usize - 1;
                    let page = n / CATEGORIES.len() % 5 + 1;
                    match n % (CATEGORIES.len() + 1) {
                        0 => Request::get(user, format!("/products?page={page}")),
                        c => Request::get(user, format!("/products?category={}&page={page}", CATEGORIES[c - 1])),
                    }
                }
                400..650 => {
                    let n = pages.sample(&mut rng) as usize - 1;
                    let category = CATEGORIES[n % CATEGORIES.len()];
                    Request::get(user, format!("/pages/{category}/{}", n / CATEGORIES.len() + 1))
                }
                650..675 => Request::get(user, format!("/news?page={}", rng.random_range(1..=3))),
                675..680 => Request::get(user, format!("/news?page={}&cache=bypass", rng.random_range(1..=3))),
                680..800 => Request::get(user, format!("/news/{}", articles.sample(&mut rng) as i64)),
                800..890 => {
                    let id = articles.sample(&mut rng) as i64;
                    Request { user, method: Method::POST, path: format!("/news/{id}/views"), json: None }
                }
                890..914 => Request::get(user, "/news/trending"),
                // About one request in 2,000: the report takes seconds without its cache.
                914 if rng.random_bool(0.5) => Request::get(user, "/analytics/dashboard"),
                915..920 => {
                    let city = CITIES[rng.random_range(0..CITIES.len())];
                    Request::get(user, format!("/weather/{city}"))
                }
                920..925 => {
                    let (currency, _) = CURRENCIES[rng.random_range(0..CURRENCIES.len())];
                    Request::get(user, format!("/rates/{currency}"))
                }
                _ => Request::get(user, "/tasks/stats"),
            }
        })
        .collect()
}

fn json(user: u32, method: Method, path: String, body: serde_json::Value) -> Request {
    Request {
        user,
        method,
        path,
        json: Some(body.to_string()),
    }
}

/// The class of a request.
pub fn class_of(request: &Request) -> Class {
    match (&request.method, request.path.as_str()) {
        _ if request.user == GREEDY => Class::Greedy,
        (&Method::POST, "/login") => Class::Login,
        (&Method::GET, "/tasks/stats") => Class::Stats,
        (&Method::GET, "/news/trending") => Class::Trending,
        (&Method::GET, "/analytics/dashboard") => Class::Dashboard,
        (&Method::GET, path) if path.starts_with("/weather/") || path.starts_with("/rates/") => {
            Class::Upstream
        }
        (&Method::GET, path) if path.starts_with("/news?") && path.ends_with("bypass") => {
            Class::NewsBypass
        }
        (&Method::GET, path) if path.starts_with("/news?") => Class::News,
        (&Method::GET, path) if path.starts_with("/news/") => Class::Article,
        (&Method::POST, path) if path.ends_with("/views") => Class::View,
        (&Method::GET, path) if path.starts_with("/pages/") => Class::Page,
        (&Method::GET, path) if path.starts_with("/products?") => Class::Listing,
        (&Method::GET, _) => Class::Product,
        _ => Class::Write,
    }
}

/// What the checks counted during one configuration's run.
pub struct Tally {
    /// The latest committed version of each item, and when each write returned.
    pub committed: Committed,
    /// The same for the articles.
    pub articles: Committed,
    /// Each article's acknowledged views, as versions: when the view that made the count `n`
    /// was acknowledged, as version `n + 1` (a count starts at 0, a version at 1).
    pub views: Committed,
    /// How far, at most, trending trailed the acknowledged views: the longest time a count it
    /// showed had been out of date when the request was sent.
    pub trending_lag: Mutex<std::time::Duration>,
    /// When each price change was acknowledged.
    pub price_changes: Mutex<Vec<Instant>>,
    /// How far, at most, the dashboard trailed the price changes: the longest time a change
    /// missing from its figures had been acknowledged when the request was sent.
    pub dashboard_lag: Mutex<std::time::Duration>,
    /// Latency by class.
    pub latency: Mutex<Vec<Latency>>,
    /// Product and article reads that began after a newer version had been committed and
    /// returned an older one; and how long, at most, the version served had been out of date.
    pub stale: Mutex<(u64, std::time::Duration)>,
    /// When each stale read was sent, and how far out of date it was (the fault run places
    /// them on its timeline).
    pub stale_reads: Mutex<Vec<(Instant, std::time::Duration)>>,
}

impl Tally {
    /// A tally for items `1..=items` and articles `1..=articles`.
    pub fn new(items: i64, articles: i64) -> Self {
        Tally {
            committed: Committed::new(items),
            articles: Committed::new(articles),
            views: Committed::new(articles),
            trending_lag: Mutex::default(),
            price_changes: Mutex::default(),
            dashboard_lag: Mutex::default(),
            latency: Mutex::new(Class::ALL.iter().map(|_| Latency::default()).collect()),
            stale: Mutex::default(),
            stale_reads: Mutex::default(),
        }
    }

    // ANCHOR: check
    /// Why `answer` is wrong for `request`, if it is; counted by class and checked for staleness.
    pub fn check(&self, request: &Request, answer: &Answer) -> Result<(), String> {
        let class = class_of(request);
        let took = answer.sent.elapsed();
        self.latency.lock().expect("not poisoned")[class as usize].record(took);
        let status = answer.status;
        match class {
            _ if status == StatusCode::TOO_MANY_REQUESTS => match class {
                Class::Greedy => Ok(()),
                _ => Err("an honest client was refused by the rate limit".to_string()),
            },
            Class::Product | Class::Greedy => {
                let view: ProductView = parse(answer)?;
                let id = id_in(&request.path)?;
                if view.id != id || view.category != category_of(id) {
                    return Err(format!("product {id} answered with {view:?}"));
                }
                self.note_staleness(&self.committed, id, view.version, answer.sent);
                Ok(())
            }
            Class::Article => {
                let article: Article = parse(answer)?;
                let id = id_in(&request.path)?;
                if article.id != id {
                    return Err(format!("article {id} answered with article {}", article.id));
                }
                self.note_staleness(&self.articles, id, article.version, answer.sent);
                Ok(())
            }
            Class::News | Class::NewsBypass => {
                let list: Vec<Headline> = parse(answer)?;
                if list.len() != LIST_SIZE as usize {
                    return Err(format!(
                        "{} answered {} headlines",
                        request.path,
                        list.len()
                    ));
                }
                let mut outdated = std::time::Duration::ZERO;
                for headline in &list {
                    let behind =
                        self.articles
                            .outdated_for(headline.id, headline.version, answer.sent);
                    outdated = outdated.max(behind);
                }
                // One stale read however many of its headlines were behind.
                self.note_outdated(outdated, answer.sent);
                Ok(())
            }
            Class::View => {
                let views: Views = parse(answer)?;
                self.views.raise(views.id, views.views + 1);
                Ok(())
            }
            Class::Trending => {
                let trending: Vec<Trend> = parse(answer)?;
                let mut lag = self.trending_lag.lock().expect("not poisoned");
                for trend in trending {
                    let behind = self
                        .views
                        .outdated_for(trend.id, trend.views + 1, answer.sent);
                    *lag = (*lag).max(behind);
                }
                Ok(())
            }
            Class::Dashboard => {
                let dashboard: Dashboard = parse(answer)?;
                if dashboard.categories.len() != CATEGORIES.len() {
                    return Err(format!("a dashboard of {dashboard:?}"));
                }
                // When its query ran, on this machine's clock as an `Instant`.
                let age = now_ms().saturating_sub(dashboard.as_of_ms);
                let as_of = Instant::now() - std::time::Duration::from_millis(age);
                let changes = self.price_changes.lock().expect("not poisoned");
                let missing = changes.iter().filter(|&&at| at > as_of && at < answer.sent);
                if let Some(first) = missing.min() {
                    let mut lag = self.dashboard_lag.lock().expect("not poisoned");
                    *lag = (*lag).max(answer.sent - *first);
                }
                Ok(())
            }
            Class::Upstream => {
                let (kind, name) = request.path[1..].split_once('/').unwrap_or_default();
                let answered = match kind {
                    "weather" => parse::<Upstream<Weather>>(answer)?.value.city,
                    _ => parse::<Upstream<Rates>>(answer)?.value.base,
                };
                match answered == name {
                    true => Ok(()),
                    false => Err(format!("{} answered for {answered}", request.path)),
                }
            }
            Class::Page => {
                let mut parts = request.path.trim_start_matches("/pages/").split('/');
                let (category, page) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let html = String::from_utf8_lossy(answer.body);
                if !html.contains(&format!("<h1>{category}</h1>"))
                    || !html.contains(&format!("Page {page}."))
                {
                    return Err(format!("page {category}/{page} answered with another page"));
                }
                Ok(())
            }
            Class::Listing => {
                let page: ListingPage = parse(answer)?;
                let asked = listing_of(request.path.split_once('?').map(|(_, q)| q))?;
                if page.listing != asked {
                    return Err(format!("{asked:?} answered with {:?}", page.listing));
                }
                let mut outdated = std::time::Duration::ZERO;
                for item in &page.items {
                    if asked.category.as_ref().is_some_and(|c| *c != item.category) {
                        return Err(format!(
                            "{asked:?} listed item {} of {}",
                            item.id, item.category
                        ));
                    }
                    let behind = self
                        .committed
                        .outdated_for(item.id, item.version, answer.sent);
                    outdated = outdated.max(behind);
                }
                // One stale read however many of its items were behind.
                self.note_outdated(outdated, answer.sent);
                Ok(())
            }
            Class::Stats => parse::<TaskStats>(answer).map(|_| ()),
            Class::Login => {
                let me: serde_json::Value = parse(answer)?;
                me.get("user")
                    .map(|_| ())
                    .ok_or_else(|| format!("a login answered {me}"))
            }
            Class::Write if request.path.starts_with("/news/") => {
                let article: Article = parse(answer)?;
                self.articles.raise(article.id, article.version);
                Ok(())
            }
            Class::Write if request.method == Method::PUT => {
                let view: ProductView = parse(answer)?;
                self.committed.raise(view.id, view.version);
                let acknowledged = Instant::now();
                self.price_changes
                    .lock()
                    .expect("not poisoned")
                    .push(acknowledged);
                Ok(())
            }
            Class::Write => {
                let task: Task = parse(answer)?;
                let asked = request.json.as_deref().unwrap_or("");
                match asked.contains(&task.title) {
                    true => Ok(()),
                    false => Err(format!("a new task came back as {task:?}")),
                }
            }
        }
    }
    // ANCHOR_END: check

    /// Counts a read that began after a newer version's write had returned.
    fn note_staleness(&self, committed: &Committed, id: i64, seen: i64, sent: Instant) {
        self.note_outdated(committed.outdated_for(id, seen, sent), sent);
    }

    /// Counts a read sent at `sent` that served something `outdated` out of date, if it was.
    fn note_outdated(&self, outdated: std::time::Duration, sent: Instant) {
        if !outdated.is_zero() {
            let reads = &self.stale_reads;
            reads.lock().expect("not poisoned").push((sent, outdated));
            let mut stale = self.stale.lock().expect("not poisoned");
            stale.0 += 1;
            stale.1 = stale.1.max(outdated);
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, String> {
    if !answer.status.is_success() && answer.status != StatusCode::NOT_MODIFIED {
        return Err(format!("status {}", answer.status));
    }
    serde_json::from_slice(answer.body).map_err(|e| format!("not the JSON expected: {e}"))
}

fn id_in(path: &str) -> Result<i64, String> {
    path.trim_start_matches("/products/")
        .trim_start_matches("/news/")
        .split('/')
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("no id in {path}"))
}
