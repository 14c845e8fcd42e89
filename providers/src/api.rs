//! The normalized API under `/v1`: one request and response vocabulary for every provider.
//!
//! A caller speaks this API; a provider plugin ([`crate::plugin::Provider`]) maps each
//! [`Operation`] to its own REST or GraphQL call and normalizes the answer back into the shapes
//! below. Two providers declared equivalent for reads therefore answer with the same shape.
//!
//! # Paths
//!
//! | Method | Path | Operation | Body |
//! |---|---|---|---|
//! | GET | `/v1/git/repos/{owner}/{repo}` | `git.get_repo` | |
//! | GET | `/v1/git/repos/{owner}/{repo}/issues?state=&cursor=` | `git.list_issues` | |
//! | POST | `/v1/git/repos/{owner}/{repo}/issues` | `git.create_issue` | `{title, body?}` |
//! | GET | `/v1/git/repos/{owner}/{repo}/issues/{number}` | `git.get_issue` | |
//! | POST | `/v1/git/repos/{owner}/{repo}/issues/{number}/comments` | `git.comment_issue` | `{body}` |
//! | GET | `/v1/git/repos/{owner}/{repo}/pulls?state=&cursor=` | `git.list_pulls` | |
//! | POST | `/v1/ci/runs` | `ci.trigger_run` | `{project, workflow?, ref, inputs?}` |
//! | GET | `/v1/ci/runs?project=&workflow=&cursor=` | `ci.list_runs` | |
//! | GET | `/v1/ci/runs/{run}?project=` | `ci.get_run` | |
//! | GET | `/v1/kb/pages?query=&space=&cursor=` | `kb.search_pages` | |
//! | POST | `/v1/kb/pages` | `kb.create_page` | `{title, body, space?, parent?}` |
//! | GET | `/v1/kb/pages/{id}` | `kb.get_page` | |
//! | GET | `/v1/pm/issues?project=&cursor=` | `pm.list_issues` | |
//! | POST | `/v1/pm/issues` | `pm.create_issue` | `{project, title, description?}` |
//! | GET | `/v1/pm/issues/{id}?project=` | `pm.get_issue` | |
//! | PATCH | `/v1/pm/issues/{id}` | `pm.update_issue` | `{project?, title?, description?, state?}` |
//! | POST | `/v1/pm/issues/{id}/comments` | `pm.comment` | `{project?, body}` |
//!
//! Every path also takes `?provider=<id>` to pin one provider of the route. `{owner}` may be a
//! nested GitLab group written with `%2F`. `project` is whatever the provider calls a project:
//! `owner/repo` (GitHub Actions, GitLab), a repository id (Woodpecker), a job name (Jenkins,
//! folders as `a/b`), a team id or key (Linear), `workspace-slug/project-id` (Plane) or a
//! project key (Jira).
//!
//! A success answers `{"data": …, "next_cursor": "…" | null, "provider": "<id>"}` (see
//! [`envelope`]); `data` is one of the shapes below, or an array of them for list operations.
//! Failures are `application/problem+json` (see [`provider_problem`]).
//!
//! # Cursors
//!
//! A cursor is opaque to callers: `base64url(version=1 ‖ len(kind) ‖ kind ‖ provider cursor)`
//! without padding. It names the provider kind it came from, so a host must send the next page
//! to a provider of that kind ([`Selector::cursor_kind`]). [`decode_cursor`] never panics; any
//! malformed value is a 400 problem.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use mosaic_core::http::Method;
use mosaic_core::problem::{Problem, ProblemKind, TYPE_BASE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::plugin::ProviderError;

/// Names of the normalized operations, `family.verb` as in the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpName {
    /// `git.get_repo`
    GitGetRepo,
    /// `git.list_issues`
    GitListIssues,
    /// `git.get_issue`
    GitGetIssue,
    /// `git.create_issue`
    GitCreateIssue,
    /// `git.comment_issue`
    GitCommentIssue,
    /// `git.list_pulls`
    GitListPulls,
    /// `ci.trigger_run`
    CiTriggerRun,
    /// `ci.get_run`
    CiGetRun,
    /// `ci.list_runs`
    CiListRuns,
    /// `kb.search_pages`
    KbSearchPages,
    /// `kb.get_page`
    KbGetPage,
    /// `kb.create_page`
    KbCreatePage,
    /// `pm.list_issues`
    PmListIssues,
    /// `pm.get_issue`
    PmGetIssue,
    /// `pm.create_issue`
    PmCreateIssue,
    /// `pm.update_issue`
    PmUpdateIssue,
    /// `pm.comment`
    PmComment,
}

impl OpName {
    /// Every operation, in documentation order.
    pub const ALL: [OpName; 17] = [
        OpName::GitGetRepo,
        OpName::GitListIssues,
        OpName::GitGetIssue,
        OpName::GitCreateIssue,
        OpName::GitCommentIssue,
        OpName::GitListPulls,
        OpName::CiTriggerRun,
        OpName::CiGetRun,
        OpName::CiListRuns,
        OpName::KbSearchPages,
        OpName::KbGetPage,
        OpName::KbCreatePage,
        OpName::PmListIssues,
        OpName::PmGetIssue,
        OpName::PmCreateIssue,
        OpName::PmUpdateIssue,
        OpName::PmComment,
    ];

    /// The stable name, `git.get_repo` style.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            OpName::GitGetRepo => "git.get_repo",
            OpName::GitListIssues => "git.list_issues",
            OpName::GitGetIssue => "git.get_issue",
            OpName::GitCreateIssue => "git.create_issue",
            OpName::GitCommentIssue => "git.comment_issue",
            OpName::GitListPulls => "git.list_pulls",
            OpName::CiTriggerRun => "ci.trigger_run",
            OpName::CiGetRun => "ci.get_run",
            OpName::CiListRuns => "ci.list_runs",
            OpName::KbSearchPages => "kb.search_pages",
            OpName::KbGetPage => "kb.get_page",
            OpName::KbCreatePage => "kb.create_page",
            OpName::PmListIssues => "pm.list_issues",
            OpName::PmGetIssue => "pm.get_issue",
            OpName::PmCreateIssue => "pm.create_issue",
            OpName::PmUpdateIssue => "pm.update_issue",
            OpName::PmComment => "pm.comment",
        }
    }

    /// Parses a stable name.
    #[must_use]
    pub fn parse(s: &str) -> Option<OpName> {
        OpName::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the operation only reads: reads may fail over across equivalent providers,
    /// writes go to the primary only and are retried only with an idempotency key.
    #[must_use]
    pub const fn is_read(self) -> bool {
        matches!(
            self,
            OpName::GitGetRepo
                | OpName::GitListIssues
                | OpName::GitGetIssue
                | OpName::GitListPulls
                | OpName::CiGetRun
                | OpName::CiListRuns
                | OpName::KbSearchPages
                | OpName::KbGetPage
                | OpName::PmListIssues
                | OpName::PmGetIssue
        )
    }

    /// Whether the answer is a list with a cursor.
    #[must_use]
    pub const fn is_list(self) -> bool {
        matches!(
            self,
            OpName::GitListIssues
                | OpName::GitListPulls
                | OpName::CiListRuns
                | OpName::KbSearchPages
                | OpName::PmListIssues
        )
    }

    /// The template variables an operation offers (declarative providers use them as
    /// `{name}` placeholders).
    #[must_use]
    pub const fn fields(self) -> &'static [&'static str] {
        match self {
            OpName::GitGetRepo => &["owner", "repo"],
            OpName::GitListIssues | OpName::GitListPulls => &["owner", "repo", "state", "cursor"],
            OpName::GitGetIssue => &["owner", "repo", "number"],
            OpName::GitCreateIssue => &["owner", "repo", "title", "body"],
            OpName::GitCommentIssue => &["owner", "repo", "number", "body"],
            OpName::CiTriggerRun => &["project", "workflow", "ref", "inputs"],
            OpName::CiGetRun => &["project", "run"],
            OpName::CiListRuns => &["project", "workflow", "cursor"],
            OpName::KbSearchPages => &["query", "space", "cursor"],
            OpName::KbGetPage => &["id"],
            OpName::KbCreatePage => &["title", "body", "space", "parent"],
            OpName::PmListIssues => &["project", "cursor"],
            OpName::PmGetIssue => &["project", "id"],
            OpName::PmCreateIssue => &["project", "title", "description"],
            OpName::PmUpdateIssue => &["project", "id", "title", "description", "state"],
            OpName::PmComment => &["project", "id", "body"],
        }
    }

    /// The normalized shape `data` holds (an array of it for list operations).
    #[must_use]
    pub const fn shape(self) -> &'static str {
        match self {
            OpName::GitGetRepo => "Repository",
            OpName::GitListIssues
            | OpName::GitGetIssue
            | OpName::GitCreateIssue
            | OpName::PmListIssues
            | OpName::PmGetIssue
            | OpName::PmCreateIssue
            | OpName::PmUpdateIssue => "Issue",
            OpName::GitCommentIssue | OpName::PmComment => "Comment",
            OpName::GitListPulls => "PullRequest",
            OpName::CiTriggerRun | OpName::CiGetRun | OpName::CiListRuns => "Run",
            OpName::KbSearchPages | OpName::KbGetPage | OpName::KbCreatePage => "Page",
        }
    }
}

/// A normalized operation with its arguments. List operations carry the **provider's** cursor
/// (already decoded from the opaque one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Operation {
    /// Get a repository.
    #[serde(rename = "git.get_repo")]
    GitGetRepo {
        /// Owner (user, organization or GitLab group path).
        owner: String,
        /// Repository name.
        repo: String,
    },
    /// List issues of a repository (pull requests excluded).
    #[serde(rename = "git.list_issues")]
    GitListIssues {
        /// Owner.
        owner: String,
        /// Repository.
        repo: String,
        /// `open` (default), `closed` or `all`.
        state: Option<String>,
        /// Provider cursor.
        cursor: Option<String>,
    },
    /// Get one issue.
    #[serde(rename = "git.get_issue")]
    GitGetIssue {
        /// Owner.
        owner: String,
        /// Repository.
        repo: String,
        /// Issue number (GitLab `iid`).
        number: u64,
    },
    /// Create an issue.
    #[serde(rename = "git.create_issue")]
    GitCreateIssue {
        /// Owner.
        owner: String,
        /// Repository.
        repo: String,
        /// Title.
        title: String,
        /// Body (Markdown).
        body: Option<String>,
    },
    /// Comment on an issue.
    #[serde(rename = "git.comment_issue")]
    GitCommentIssue {
        /// Owner.
        owner: String,
        /// Repository.
        repo: String,
        /// Issue number.
        number: u64,
        /// Comment text (Markdown).
        body: String,
    },
    /// List pull (merge) requests.
    #[serde(rename = "git.list_pulls")]
    GitListPulls {
        /// Owner.
        owner: String,
        /// Repository.
        repo: String,
        /// `open` (default), `closed` or `all`.
        state: Option<String>,
        /// Provider cursor.
        cursor: Option<String>,
    },
    /// Trigger a pipeline or workflow run.
    #[serde(rename = "ci.trigger_run")]
    CiTriggerRun {
        /// Project (see the module docs).
        project: String,
        /// Workflow file or id (GitHub Actions); ignored elsewhere.
        workflow: Option<String>,
        /// Branch or tag.
        #[serde(rename = "ref")]
        git_ref: String,
        /// Inputs / variables / build parameters.
        inputs: BTreeMap<String, String>,
    },
    /// Get one run.
    #[serde(rename = "ci.get_run")]
    CiGetRun {
        /// Project.
        project: String,
        /// Run id (GitHub run id, GitLab pipeline id, Woodpecker/Jenkins number; Jenkins
        /// `queue-<id>` for a queued build).
        run: String,
    },
    /// List runs, newest first.
    #[serde(rename = "ci.list_runs")]
    CiListRuns {
        /// Project.
        project: String,
        /// Only this workflow (GitHub Actions).
        workflow: Option<String>,
        /// Provider cursor.
        cursor: Option<String>,
    },
    /// Full-text search for pages.
    #[serde(rename = "kb.search_pages")]
    KbSearchPages {
        /// Search text.
        query: String,
        /// Restrict to a space (Confluence space key); optional.
        space: Option<String>,
        /// Provider cursor.
        cursor: Option<String>,
    },
    /// Get one page with its body.
    #[serde(rename = "kb.get_page")]
    KbGetPage {
        /// Page id.
        id: String,
    },
    /// Create a page.
    #[serde(rename = "kb.create_page")]
    KbCreatePage {
        /// Title.
        title: String,
        /// Body as plain text, paragraphs separated by blank lines (Markdown for BookStack).
        body: String,
        /// Space (Confluence space id, BookStack book id).
        space: Option<String>,
        /// Parent (Notion parent page id, Confluence parent page id, BookStack chapter id).
        parent: Option<String>,
    },
    /// List issues of a project.
    #[serde(rename = "pm.list_issues")]
    PmListIssues {
        /// Project.
        project: String,
        /// Provider cursor.
        cursor: Option<String>,
    },
    /// Get one issue.
    #[serde(rename = "pm.get_issue")]
    PmGetIssue {
        /// Project (Plane needs it).
        project: Option<String>,
        /// Issue id or key.
        id: String,
    },
    /// Create an issue.
    #[serde(rename = "pm.create_issue")]
    PmCreateIssue {
        /// Project.
        project: String,
        /// Title.
        title: String,
        /// Description (plain text).
        description: Option<String>,
    },
    /// Update an issue's title or description.
    #[serde(rename = "pm.update_issue")]
    PmUpdateIssue {
        /// Project (Plane needs it).
        project: Option<String>,
        /// Issue id or key.
        id: String,
        /// New title.
        title: Option<String>,
        /// New description.
        description: Option<String>,
        /// New state: providers map states by id, so only where supported.
        state: Option<String>,
    },
    /// Comment on an issue.
    #[serde(rename = "pm.comment")]
    PmComment {
        /// Project (Plane needs it).
        project: Option<String>,
        /// Issue id or key.
        id: String,
        /// Comment text.
        body: String,
    },
}

impl Operation {
    /// The operation's name.
    #[must_use]
    pub fn name(&self) -> OpName {
        match self {
            Operation::GitGetRepo { .. } => OpName::GitGetRepo,
            Operation::GitListIssues { .. } => OpName::GitListIssues,
            Operation::GitGetIssue { .. } => OpName::GitGetIssue,
            Operation::GitCreateIssue { .. } => OpName::GitCreateIssue,
            Operation::GitCommentIssue { .. } => OpName::GitCommentIssue,
            Operation::GitListPulls { .. } => OpName::GitListPulls,
            Operation::CiTriggerRun { .. } => OpName::CiTriggerRun,
            Operation::CiGetRun { .. } => OpName::CiGetRun,
            Operation::CiListRuns { .. } => OpName::CiListRuns,
            Operation::KbSearchPages { .. } => OpName::KbSearchPages,
            Operation::KbGetPage { .. } => OpName::KbGetPage,
            Operation::KbCreatePage { .. } => OpName::KbCreatePage,
            Operation::PmListIssues { .. } => OpName::PmListIssues,
            Operation::PmGetIssue { .. } => OpName::PmGetIssue,
            Operation::PmCreateIssue { .. } => OpName::PmCreateIssue,
            Operation::PmUpdateIssue { .. } => OpName::PmUpdateIssue,
            Operation::PmComment { .. } => OpName::PmComment,
        }
    }

    /// Whether the operation only reads (see [`OpName::is_read`]).
    #[must_use]
    pub fn is_read(&self) -> bool {
        self.name().is_read()
    }

    /// The provider cursor of a list operation.
    #[must_use]
    pub fn cursor(&self) -> Option<&str> {
        match self {
            Operation::GitListIssues { cursor, .. }
            | Operation::GitListPulls { cursor, .. }
            | Operation::CiListRuns { cursor, .. }
            | Operation::KbSearchPages { cursor, .. }
            | Operation::PmListIssues { cursor, .. } => cursor.as_deref(),
            _ => None,
        }
    }

    /// The operation's arguments as template variables (see [`OpName::fields`]); absent
    /// optional arguments are missing, `inputs` is a JSON object.
    #[must_use]
    pub fn vars(&self) -> BTreeMap<&'static str, Value> {
        let mut m = BTreeMap::new();
        if let Ok(Value::Object(o)) = serde_json::to_value(self) {
            for f in self.name().fields() {
                if let Some(v) = o.get(*f).filter(|v| !v.is_null()) {
                    m.insert(*f, v.clone());
                }
            }
        }
        m
    }

    /// A placeholder instance of `name` (used to probe which operations a plugin maps).
    #[must_use]
    pub fn sample(name: OpName) -> Operation {
        let s = || String::from("x");
        match name {
            OpName::GitGetRepo => Operation::GitGetRepo {
                owner: s(),
                repo: s(),
            },
            OpName::GitListIssues => Operation::GitListIssues {
                owner: s(),
                repo: s(),
                state: None,
                cursor: None,
            },
            OpName::GitGetIssue => Operation::GitGetIssue {
                owner: s(),
                repo: s(),
                number: 1,
            },
            OpName::GitCreateIssue => Operation::GitCreateIssue {
                owner: s(),
                repo: s(),
                title: s(),
                body: None,
            },
            OpName::GitCommentIssue => Operation::GitCommentIssue {
                owner: s(),
                repo: s(),
                number: 1,
                body: s(),
            },
            OpName::GitListPulls => Operation::GitListPulls {
                owner: s(),
                repo: s(),
                state: None,
                cursor: None,
            },
            OpName::CiTriggerRun => Operation::CiTriggerRun {
                project: String::from("1"),
                workflow: Some(s()),
                git_ref: s(),
                inputs: BTreeMap::new(),
            },
            OpName::CiGetRun => Operation::CiGetRun {
                project: String::from("1"),
                run: String::from("1"),
            },
            OpName::CiListRuns => Operation::CiListRuns {
                project: String::from("1"),
                workflow: None,
                cursor: None,
            },
            OpName::KbSearchPages => Operation::KbSearchPages {
                query: s(),
                space: None,
                cursor: None,
            },
            OpName::KbGetPage => Operation::KbGetPage {
                id: String::from("1"),
            },
            OpName::KbCreatePage => Operation::KbCreatePage {
                title: s(),
                body: s(),
                space: Some(String::from("1")),
                parent: Some(String::from("1")),
            },
            OpName::PmListIssues => Operation::PmListIssues {
                project: String::from("x/1"),
                cursor: None,
            },
            OpName::PmGetIssue => Operation::PmGetIssue {
                project: Some(String::from("x/1")),
                id: String::from("1"),
            },
            OpName::PmCreateIssue => Operation::PmCreateIssue {
                project: String::from("x/1"),
                title: s(),
                description: None,
            },
            OpName::PmUpdateIssue => Operation::PmUpdateIssue {
                project: Some(String::from("x/1")),
                id: String::from("1"),
                title: Some(s()),
                description: None,
                state: None,
            },
            OpName::PmComment => Operation::PmComment {
                project: Some(String::from("x/1")),
                id: String::from("1"),
                body: s(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Normalized shapes
// ---------------------------------------------------------------------------------------------

/// A repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// The provider's id.
    pub id: String,
    /// Short name.
    pub name: String,
    /// `owner/name` (GitLab: the full namespace path).
    pub full_name: String,
    /// Owner login or namespace.
    pub owner: String,
    /// Description.
    pub description: Option<String>,
    /// Default branch.
    pub default_branch: Option<String>,
    /// Private (or internal) repository.
    pub private: bool,
    /// Web page.
    pub url: Option<String>,
    /// HTTPS clone URL.
    pub clone_url: Option<String>,
}

/// An issue (git host issue or project-management work item).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The provider's id.
    pub id: String,
    /// Per-repository number (GitHub/Gitea number, GitLab iid, Plane sequence id).
    pub number: Option<u64>,
    /// Human key (`ENG-123`, `PROJ-7`).
    pub key: Option<String>,
    /// Title.
    pub title: String,
    /// Body or description, as text.
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    /// The provider's own state name (`In Progress`, `opened`, …).
    pub status: Option<String>,
    /// Author's login or display name.
    pub author: Option<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Web page.
    pub url: Option<String>,
    /// Created (as the provider writes it, ISO 8601).
    pub created_at: Option<String>,
    /// Updated.
    pub updated_at: Option<String>,
}

/// A comment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The provider's id.
    pub id: String,
    /// Text.
    pub body: String,
    /// Author.
    pub author: Option<String>,
    /// Web page.
    pub url: Option<String>,
    /// Created.
    pub created_at: Option<String>,
}

/// A pull or merge request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// The provider's id.
    pub id: String,
    /// Number (GitLab iid).
    pub number: u64,
    /// Title.
    pub title: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    /// Draft.
    pub draft: bool,
    /// Author.
    pub author: Option<String>,
    /// Source branch.
    pub source_branch: Option<String>,
    /// Target branch.
    pub target_branch: Option<String>,
    /// Web page.
    pub url: Option<String>,
    /// Created.
    pub created_at: Option<String>,
}

/// A CI run (workflow run, pipeline, build).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Run id to pass to `ci.get_run`.
    pub id: String,
    /// `queued`, `running`, `success`, `failure`, `cancelled`, `skipped` or `unknown`.
    pub status: String,
    /// The provider's own status (and conclusion), e.g. `completed/success`, `FAILURE`.
    pub raw_status: Option<String>,
    /// Branch or tag.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Commit.
    pub sha: Option<String>,
    /// Web page.
    pub url: Option<String>,
    /// Created (ISO 8601 or epoch, as the provider gives it).
    pub created_at: Option<String>,
}

/// A knowledge-base page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The provider's id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Space, book or workspace.
    pub space: Option<String>,
    /// Parent page or chapter.
    pub parent: Option<String>,
    /// Body (storage XHTML for Confluence, HTML/Markdown for BookStack, absent for Notion,
    /// whose content lives in blocks), or a search excerpt.
    pub body: Option<String>,
    /// Web page.
    pub url: Option<String>,
    /// Last updated.
    pub updated_at: Option<String>,
}

/// Normalizes a run status to the fixed vocabulary of [`Run::status`].
#[must_use]
pub fn run_status(raw: &str) -> &'static str {
    match raw.to_ascii_lowercase().as_str() {
        "queued"
        | "waiting"
        | "requested"
        | "pending"
        | "created"
        | "preparing"
        | "waiting_for_resource"
        | "scheduled"
        | "manual"
        | "blocked" => "queued",
        "in_progress" | "running" | "building" => "running",
        "success" | "passed" | "completed_success" => "success",
        "failure" | "failed" | "error" | "timed_out" | "startup_failure" | "unstable"
        | "action_required" => "failure",
        "cancelled" | "canceled" | "killed" | "aborted" | "declined" => "cancelled",
        "skipped" | "neutral" | "not_built" => "skipped",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------------

const CURSOR_VERSION: u8 = 1;
/// Longest cursor accepted, encoded.
pub const MAX_CURSOR_LEN: usize = 4096;

/// Wraps a provider cursor into an opaque API cursor.
#[must_use]
pub fn encode_cursor(kind: &str, provider_cursor: &str) -> String {
    let kind = &kind.as_bytes()[..kind.len().min(255)];
    let mut b = Vec::with_capacity(2 + kind.len() + provider_cursor.len());
    b.push(CURSOR_VERSION);
    b.push(u8::try_from(kind.len()).unwrap_or(u8::MAX));
    b.extend_from_slice(kind);
    b.extend_from_slice(provider_cursor.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Unwraps an opaque API cursor into (provider kind, provider cursor).
///
/// # Errors
/// A 400 problem for anything this API did not issue: bad base64, unknown version, truncated,
/// not UTF-8, too long.
pub fn decode_cursor(cursor: &str) -> Result<(String, String), Problem> {
    let bad = |why: &str| {
        Problem::new(
            ProblemKind::BadRequest,
            format!("`cursor` is not a cursor this API issued ({why}); pass `next_cursor` from a previous page unchanged"),
        )
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad("too long"));
    }
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .map_err(|_| bad("not base64url"))?;
    match b.first() {
        Some(&CURSOR_VERSION) => {}
        Some(_) => return Err(bad("unknown version")),
        None => return Err(bad("empty")),
    }
    let n = usize::from(*b.get(1).ok_or_else(|| bad("truncated"))?);
    let kind = b.get(2..2 + n).ok_or_else(|| bad("truncated"))?;
    let rest = b.get(2 + n..).ok_or_else(|| bad("truncated"))?;
    let kind = core::str::from_utf8(kind).map_err(|_| bad("not UTF-8"))?;
    let rest = core::str::from_utf8(rest).map_err(|_| bad("not UTF-8"))?;
    if kind.is_empty() {
        return Err(bad("names no provider"));
    }
    Ok((kind.to_owned(), rest.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Parsing /v1 requests
// ---------------------------------------------------------------------------------------------

/// Which provider a `/v1` request asks for, beyond the route's own order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// `?provider=<id>`: use only this provider of the route.
    pub provider: Option<String>,
    /// The provider kind the request's cursor came from: only providers of this kind can
    /// continue the listing.
    pub cursor_kind: Option<String>,
}

/// Percent-decodes a path segment or query component (`+` is a space in queries only).
/// `None` for invalid escapes or non-UTF-8 results.
#[must_use]
pub fn pct_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                let h = core::str::from_utf8(h).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
#[must_use]
pub fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a query string into decoded pairs; `None` for a bad escape.
#[must_use]
pub fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((pct_decode(k, true)?, pct_decode(v, true)?))
        })
        .collect()
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::BadRequest, detail)
}

#[derive(Deserialize)]
struct CreateIssueBody {
    title: String,
    body: Option<String>,
}
#[derive(Deserialize)]
struct CommentBody {
    body: String,
    project: Option<String>,
}
#[derive(Deserialize)]
struct TriggerBody {
    project: String,
    workflow: Option<String>,
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
}
#[derive(Deserialize)]
struct CreatePageBody {
    title: String,
    body: String,
    space: Option<String>,
    parent: Option<String>,
}
#[derive(Deserialize)]
struct CreatePmIssueBody {
    project: String,
    title: String,
    description: Option<String>,
}
#[derive(Deserialize)]
struct UpdatePmIssueBody {
    project: Option<String>,
    title: Option<String>,
    description: Option<String>,
    state: Option<String>,
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(bad(format!("{what} needs a JSON body")));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("{what}: invalid JSON body: {e}")))
}

fn non_empty(v: String, name: &str) -> Result<String, Problem> {
    if v.trim().is_empty() {
        Err(bad(format!("`{name}` must not be empty")))
    } else {
        Ok(v)
    }
}

/// Parses a `/v1` request into an operation and a provider selector.
///
/// `path` is the request path (`/v1/…`, still percent-encoded), `query` the raw query string
/// without `?`, `body` the raw request body (JSON for writes).
///
/// # Errors
/// 404 `no-route` for a path that is not a `/v1` operation (with 405-like detail when only the
/// method is wrong), 400 `bad-request` for bad arguments, bodies or cursors.
pub fn parse_v1(
    method: Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Operation, Selector), Problem> {
    let q = parse_query(query.unwrap_or("")).ok_or_else(|| bad("malformed query string"))?;
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let rest = path
        .strip_prefix("/v1/")
        .ok_or_else(|| Problem::new(ProblemKind::NoRoute, format!("{path} is not under /v1")))?;
    let raw: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let mut seg = Vec::with_capacity(raw.len());
    for s in &raw {
        if s.is_empty() {
            return Err(bad("empty path segment"));
        }
        seg.push(pct_decode(s, false).ok_or_else(|| bad("bad percent-escape in path"))?);
    }
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();

    let mut sel = Selector {
        provider: get("provider").filter(|p| !p.is_empty()),
        cursor_kind: None,
    };
    let mut cursor = || -> Result<Option<String>, Problem> {
        match get("cursor").filter(|c| !c.is_empty()) {
            None => Ok(None),
            Some(c) => {
                let (kind, pc) = decode_cursor(&c)?;
                sel.cursor_kind = Some(kind);
                Ok(Some(pc))
            }
        }
    };
    let number = |s: &str| -> Result<u64, Problem> {
        s.parse::<u64>()
            .map_err(|_| bad(format!("issue number `{s}` is not a positive integer")))
    };
    let need = |k: &str| -> Result<String, Problem> {
        get(k)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| bad(format!("query parameter `{k}` is required")))
    };
    use Method::{Get, Patch, Post};
    let op = match (method, seg.as_slice()) {
        (Get, ["git", "repos", o, r]) => Operation::GitGetRepo {
            owner: (*o).into(),
            repo: (*r).into(),
        },
        (Get, ["git", "repos", o, r, "issues"]) => Operation::GitListIssues {
            owner: (*o).into(),
            repo: (*r).into(),
            state: get("state"),
            cursor: cursor()?,
        },
        (Post, ["git", "repos", o, r, "issues"]) => {
            let b: CreateIssueBody = json_body(body, "git.create_issue")?;
            Operation::GitCreateIssue {
                owner: (*o).into(),
                repo: (*r).into(),
                title: non_empty(b.title, "title")?,
                body: b.body,
            }
        }
        (Get, ["git", "repos", o, r, "issues", n]) => Operation::GitGetIssue {
            owner: (*o).into(),
            repo: (*r).into(),
            number: number(n)?,
        },
        (Post, ["git", "repos", o, r, "issues", n, "comments"]) => {
            let b: CommentBody = json_body(body, "git.comment_issue")?;
            Operation::GitCommentIssue {
                owner: (*o).into(),
                repo: (*r).into(),
                number: number(n)?,
                body: non_empty(b.body, "body")?,
            }
        }
        (Get, ["git", "repos", o, r, "pulls"]) => Operation::GitListPulls {
            owner: (*o).into(),
            repo: (*r).into(),
            state: get("state"),
            cursor: cursor()?,
        },
        (Post, ["ci", "runs"]) => {
            let b: TriggerBody = json_body(body, "ci.trigger_run")?;
            Operation::CiTriggerRun {
                project: non_empty(b.project, "project")?,
                workflow: b.workflow,
                git_ref: non_empty(b.git_ref, "ref")?,
                inputs: b.inputs,
            }
        }
        (Get, ["ci", "runs"]) => Operation::CiListRuns {
            project: need("project")?,
            workflow: get("workflow"),
            cursor: cursor()?,
        },
        (Get, ["ci", "runs", id]) => Operation::CiGetRun {
            project: need("project")?,
            run: (*id).into(),
        },
        (Get, ["kb", "pages"]) => Operation::KbSearchPages {
            query: need("query")?,
            space: get("space"),
            cursor: cursor()?,
        },
        (Post, ["kb", "pages"]) => {
            let b: CreatePageBody = json_body(body, "kb.create_page")?;
            Operation::KbCreatePage {
                title: non_empty(b.title, "title")?,
                body: b.body,
                space: b.space,
                parent: b.parent,
            }
        }
        (Get, ["kb", "pages", id]) => Operation::KbGetPage { id: (*id).into() },
        (Get, ["pm", "issues"]) => Operation::PmListIssues {
            project: need("project")?,
            cursor: cursor()?,
        },
        (Post, ["pm", "issues"]) => {
            let b: CreatePmIssueBody = json_body(body, "pm.create_issue")?;
            Operation::PmCreateIssue {
                project: non_empty(b.project, "project")?,
                title: non_empty(b.title, "title")?,
                description: b.description,
            }
        }
        (Get, ["pm", "issues", id]) => Operation::PmGetIssue {
            project: get("project"),
            id: (*id).into(),
        },
        (Patch, ["pm", "issues", id]) => {
            let b: UpdatePmIssueBody = json_body(body, "pm.update_issue")?;
            if b.title.is_none() && b.description.is_none() && b.state.is_none() {
                return Err(bad(
                    "pm.update_issue needs at least one of `title`, `description`, `state`",
                ));
            }
            Operation::PmUpdateIssue {
                project: b.project.or_else(|| get("project")),
                id: (*id).into(),
                title: b.title,
                description: b.description,
                state: b.state,
            }
        }
        (Post, ["pm", "issues", id, "comments"]) => {
            let b: CommentBody = json_body(body, "pm.comment")?;
            Operation::PmComment {
                project: b.project.or_else(|| get("project")),
                id: (*id).into(),
                body: non_empty(b.body, "body")?,
            }
        }
        _ => {
            let known = path_exists(&seg);
            return Err(Problem::new(
                ProblemKind::NoRoute,
                if known {
                    format!(
                        "{} is not allowed on {path}; see /v1/openapi.json",
                        method.as_str()
                    )
                } else {
                    format!("{path} is not a /v1 operation; see /v1/openapi.json")
                },
            ));
        }
    };
    Ok((op, sel))
}

fn path_exists(seg: &[&str]) -> bool {
    matches!(
        seg,
        ["git", "repos", _, _]
            | ["git", "repos", _, _, "issues" | "pulls"]
            | ["git", "repos", _, _, "issues", _]
            | ["git", "repos", _, _, "issues", _, "comments"]
            | ["ci", "runs"]
            | ["ci", "runs", _]
            | ["kb", "pages"]
            | ["kb", "pages", _]
            | ["pm", "issues"]
            | ["pm", "issues", _]
            | ["pm", "issues", _, "comments"]
    )
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// The success body of a `/v1` answer: `{"data", "next_cursor", "provider"}`, with the
/// provider's cursor wrapped into an opaque one.
#[must_use]
pub fn envelope(provider_id: &str, kind: &str, resp: &crate::plugin::NormalizedResponse) -> Value {
    json!({
        "data": resp.data,
        "next_cursor": resp.next_cursor.as_deref().map(|c| encode_cursor(kind, c)),
        "provider": provider_id,
    })
}

/// Problem `type` slug for an error the provider answered with.
pub const PROVIDER_ERROR: &str = "provider-error";
/// Problem `type` slug for an operation the provider cannot perform.
pub const UNSUPPORTED: &str = "unsupported-operation";

/// The status a `/v1` caller sees for a provider error: the caller's faults (4xx) pass
/// through, 429 stays 429, the provider's own faults become 502.
#[must_use]
pub fn provider_error_status(e: &ProviderError) -> u16 {
    match e.status {
        429 => 429,
        s @ 400..=499 => s,
        _ => 502,
    }
}

/// A provider's error as `application/problem+json` (status, body), keeping the provider's
/// own message, status and code.
#[must_use]
pub fn provider_problem(provider_id: &str, e: &ProviderError, request_id: &str) -> (u16, String) {
    let status = provider_error_status(e);
    let body = json!({
        "type": format!("{TYPE_BASE}{PROVIDER_ERROR}"),
        "title": "The provider answered with an error",
        "status": status,
        "detail": format!("{provider_id} answered {}: {}", e.status, e.message),
        "instance": format!("urn:mosaic:request:{request_id}"),
        "request_id": request_id,
        "code": PROVIDER_ERROR,
        "provider": provider_id,
        "provider_status": e.status,
        "provider_message": e.message,
        "provider_code": e.code,
    });
    (status, body.to_string())
}

/// An operation the provider does not support, or cannot do with these arguments, as
/// `application/problem+json` (status 501, or 400 when an argument is missing).
#[must_use]
pub fn unsupported_problem(u: &crate::plugin::Unsupported, request_id: &str) -> (u16, String) {
    let status = if u.reason.is_some() { 400 } else { 501 };
    let body = json!({
        "type": format!("{TYPE_BASE}{UNSUPPORTED}"),
        "title": "Operation not supported by this provider",
        "status": status,
        "detail": u.to_string(),
        "instance": format!("urn:mosaic:request:{request_id}"),
        "request_id": request_id,
        "code": UNSUPPORTED,
    });
    (status, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = encode_cursor("github", "3");
        assert_eq!(
            decode_cursor(&c),
            Ok((String::from("github"), String::from("3")))
        );
        for g in [
            "",
            "!!!",
            "AA",
            "AQ",
            "AgZnaXRodWI",
            "AQpnaXQ",
            &"A".repeat(5000),
        ] {
            assert!(decode_cursor(g).is_err(), "{g}");
        }
    }

    #[test]
    fn paths_parse() {
        let (op, sel) = parse_v1(
            Method::Get,
            "/v1/git/repos/a%2Fb/c",
            Some("provider=gh"),
            b"",
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            op,
            Operation::GitGetRepo {
                owner: "a/b".into(),
                repo: "c".into()
            }
        );
        assert_eq!(sel.provider.as_deref(), Some("gh"));
        assert!(parse_v1(Method::Delete, "/v1/git/repos/a/b", None, b"").is_err());
        assert!(parse_v1(Method::Get, "/v1/git/repos/a/b/issues/x", None, b"").is_err());
    }
}
