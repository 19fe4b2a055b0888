"""Models on the Hugging Face Hub: fetch into the standard cache, verify, work offline, publish.

All transfers go through `huggingface_hub` (`snapshot_download`, `upload_folder`); this module decides which files
a model needs, checks the weights against the sha256 in config.json, keeps broken downloads out of the cache, and
turns Hub failures into one-line errors that name the fix. It is transport only: what a model spec means, and
listing and describing models, belong to `upscale.models`, which this module never imports. Settings (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT,
HF_HUB_OFFLINE, HF_TOKEN) are read when a function is called, not at import, so setting them late still counts.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import huggingface_hub
from huggingface_hub import constants

from trinas.export import (CARD, CONFIG, MAX_CONFIG_BYTES, MODEL_FILES, PICKLED, PICTURES, WEIGHTS, ModelFormatError,
                           model_card, pictures_in, read_config, sha256_file)

from .errors import UpscaleError

HUB_ORG = "trinas-upscale"
LIBRARY = "trinas-upscale"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A branch, tag or commit: path segments of name characters, none of them "." or "..".
_REVISION = re.compile(r"^(?!.*(?:^|/)\.{1,2}(?:/|$))[\w][\w.+-]*(?:/[\w][\w.+-]*)*$")


class HubError(UpscaleError):
    """A Hub download or upload that failed; the one-line message names the repo and the fix."""


@dataclass(frozen=True)
class HubSpec:
    """`owner/repo` at an optional revision (branch, tag or commit); None means the default branch."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"hf:{self.repo}" + (f"@{self.revision}" if self.revision else "")

    @property
    def pinned(self) -> bool:
        """A full commit hash: immutable, so a cached copy is used without asking the Hub."""
        return bool(self.revision and _COMMIT.match(self.revision))


@dataclass(frozen=True)
class PushResult:
    repo: str
    commit: str
    url: str
    files: tuple[str, ...]


# ---- settings, read at call time -------------------------------------------------------------------------------

def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in constants.ENV_VARS_TRUE_VALUES


def is_offline() -> bool:
    """HF_HUB_OFFLINE=1 (or `upscale --offline`, which sets it): use the cache only, never the network."""
    return (_true(os.environ.get("HF_HUB_OFFLINE")) or _true(os.environ.get("TRANSFORMERS_OFFLINE"))
            or constants.HF_HUB_OFFLINE)


@contextlib.contextmanager
def offline_mode() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 while the block runs, then as before: how `upscale --offline` reaches every command."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def cache_dir() -> Path:
    """The standard Hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _library_version() -> str | None:
    try:
        from importlib.metadata import version

        return version(LIBRARY)
    except Exception:  # noqa: BLE001 - a source checkout without metadata still works
        return None


# ---- specs and records -----------------------------------------------------------------------------------------

def parse_spec(text: str) -> HubSpec:
    """`hf:owner/repo[@revision]` (the `hf:` prefix is optional) -> HubSpec, or a HubError saying the form.

    A revision names a branch, tag or commit; the cache keeps it as a file name under `refs/`, so one that
    could leave that folder (`..`, an absolute path, a backslash) is refused here, before any request."""
    body = text[3:] if text.startswith("hf:") else text
    repo, at, revision = body.partition("@")
    if not _REPO_ID.match(repo) or "--" in repo or ".." in repo or (at and not _REVISION.match(revision)):
        raise HubError(f"bad Hub model spec {text!r}: expected hf:owner/repo or hf:owner/repo@revision")
    return HubSpec(repo, revision or None)


def default_repo(name: str) -> str:
    """The Hub repository a packaged model is published under: `trinas-x4` -> `trinas-upscale/trinas-x4`."""
    return f"{HUB_ORG}/{name}"


def hub_record(config: dict[str, Any]) -> HubSpec | None:
    """The Hub repo and commit a packaged model corresponds to (config `"hub": {"repo", "revision"}`), if recorded."""
    record = config.get("hub")
    if not isinstance(record, dict) or not record.get("repo"):
        return None
    return HubSpec(str(record["repo"]), str(record["revision"]) if record.get("revision") else None)


def with_hub_record(config: dict[str, Any], repo: str, revision: str) -> dict[str, Any]:
    """A copy of `config` recording the Hub commit it was published as (for packaged models)."""
    return {**config, "hub": {"repo": repo, "revision": revision}}


# ---- fetch -----------------------------------------------------------------------------------------------------

MAX_DOWNLOAD_BYTES = 1 << 30  # a model repo's files in all (ours are under 1 MB); more is refused unfetched
HUB_TIMEOUT_S = 10.0  # seconds any one Hub request may wait for an answer (UPSCALE_HUB_TIMEOUT changes it)


def hub_timeout() -> float:
    try:
        value = float(os.environ.get("UPSCALE_HUB_TIMEOUT", HUB_TIMEOUT_S))
    except ValueError:
        return HUB_TIMEOUT_S
    return value if value > 0 else HUB_TIMEOUT_S


def _request_timeout(request: Any) -> None:
    """A request hook: every wait the request leaves unbounded (huggingface_hub passes `timeout=None` to its
    API calls) gets the Hub timeout."""
    timeout = dict(request.extensions.get("timeout") or {})
    for key in ("connect", "read", "write", "pool"):
        if timeout.get(key) is None:
            timeout[key] = hub_timeout()
    request.extensions["timeout"] = timeout


def _bounded_requests() -> None:
    """Bound every wait of huggingface_hub's shared HTTP client: it waits forever for a server that accepted
    the connection and never answers (`upscale` hung on pull, image and cached branches)."""
    client = huggingface_hub.get_session()
    hooks = getattr(client, "event_hooks", None)
    if hooks is not None and _request_timeout not in hooks.get("request", []):
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), _request_timeout]}


def fetch(spec: str | HubSpec, *, offline: bool | None = None, token: str | None = None) -> Path:
    """Download (or find in the cache) the model files of a Hub repo and return the verified snapshot folder.

    Only config.json, model.safetensors and README.md are fetched. A cached full commit hash, or offline mode,
    makes no request at all; weights that do not match config.json are removed from the cache and refused.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    offline = is_offline() if offline is None else offline
    cache = cache_dir()
    storage = cache / f"models--{spec.repo.replace('/', '--')}"
    if spec.pinned and _complete(storage / "snapshots" / spec.revision):
        return _verified(storage / "snapshots" / spec.revision, spec)
    _bounded_requests()
    options = dict(revision=spec.revision, cache_dir=str(cache), endpoint=endpoint(), local_files_only=offline,
                   allow_patterns=[*MODEL_FILES, *PICTURES], token=token, library_name=LIBRARY,
                   library_version=_library_version(), etag_timeout=hub_timeout())
    try:
        folder = _download(spec, options)
    except HubError:
        raise
    except BaseException as exc:
        if not offline:
            _discard_incomplete(storage, spec)
        if isinstance(exc, Exception):
            raise HubError(explain(exc, spec, offline=offline)) from exc
        raise
    _require_model_files(folder, spec, cache)
    return _verified(folder, spec)


def _download(spec: HubSpec, options: dict) -> Path:
    """`snapshot_download` with these options, once the Hub's listing (a dry run: nothing downloaded) shows
    files of a model's size. All of them cached already: that answer is the folder, with no second look-up.
    The Hub not answering the listing: the cache serves, as snapshot_download itself would, without waiting
    twice."""
    if options["local_files_only"]:
        return Path(huggingface_hub.snapshot_download(spec.repo, **options))
    try:
        planned = huggingface_hub.snapshot_download(spec.repo, **options, dry_run=True)
    except huggingface_hub.errors.DryRunError as exc:
        unreachable = exc
    else:
        _refuse_oversized(spec, planned)
        cached = {entry.filename: entry for entry in planned if not entry.will_download}
        if len(cached) == len(planned) and CONFIG in cached:
            return Path(cached[CONFIG].local_path).parent
        return Path(huggingface_hub.snapshot_download(spec.repo, **options))
    try:
        return Path(huggingface_hub.snapshot_download(spec.repo, **{**options, "local_files_only": True}))
    except Exception:
        raise unreachable from unreachable.__cause__  # why the Hub could not be asked, not "not cached"


def _refuse_oversized(spec: HubSpec, planned: list) -> None:
    """Refuse, before a byte is downloaded, a repo whose files (the sizes the Hub lists) are far over any
    TriNAS model's: a config over MAX_CONFIG_BYTES, or more than MAX_DOWNLOAD_BYTES in all. Our models are a
    few hundred kilobytes; a repo of gigabytes is not one, whatever its config says."""
    sizes = {entry.filename: entry.file_size or 0 for entry in planned if entry.will_download}
    if sizes.get(CONFIG, 0) > MAX_CONFIG_BYTES:
        raise HubError(f"{spec}: its {CONFIG} is {sizes[CONFIG]:,} bytes; a model config is at most "
                       f"{MAX_CONFIG_BYTES:,}: not downloaded")
    if sum(sizes.values()) > MAX_DOWNLOAD_BYTES:
        largest = max(sizes, key=sizes.get)
        raise HubError(f"{spec}: its model files come to {sum(sizes.values()):,} bytes ({largest} "
                       f"{sizes[largest]:,}), over the {MAX_DOWNLOAD_BYTES:,} allowed (a TriNAS model is a few hundred "
                       f"kilobytes): not downloaded")


def _complete(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def _require_model_files(folder: Path, spec: HubSpec, cache: Path) -> None:
    """Refuse a repo without safetensors weights, naming pickled files if that is all it has."""
    if _complete(folder):
        return
    files = _repo_files(spec, folder, cache)
    pickled = sorted(f for f in files if f.endswith(PICKLED))
    if WEIGHTS not in files and pickled:
        raise HubError(f"{spec} has only pickled weights ({', '.join(pickled)}); they are never loaded because "
                       f"unpickling runs code: ask the author for {WEIGHTS}")
    missing = [f for f in (CONFIG, WEIGHTS) if not (folder / f).is_file()]
    raise HubError(f"{spec} is not a TriNAS model repository: no {' or '.join(missing)} "
                   f"(a model repo holds {', '.join(MODEL_FILES)})")


def _repo_files(spec: HubSpec, folder: Path, cache: Path) -> list[str]:
    """The files the repo has at the fetched commit, from the tree listing snapshot_download cached."""
    try:
        tree = huggingface_hub.get_cached_repo_tree(spec.repo, revision=folder.name, cache_dir=str(cache))
        return [f.path for f in tree]
    except Exception:  # noqa: BLE001 - no listing cached: fall back to what is on disk
        return [p.name for p in folder.glob("*")] if folder.is_dir() else []


def _verified(folder: Path, spec: HubSpec) -> Path:
    """The folder, once config.json is intact and model.safetensors matches its sha256; otherwise the damaged
    files are purged from the cache (so a retry downloads them again) and refused."""
    retry = f"removed it from the cache, run `upscale models pull {spec}` to retry"
    try:
        config = read_config(folder)  # first: it reads no more than a config's bound
        if not _matches_blob_name(folder / CONFIG):  # then the whole file, now known to be small, is hashed
            raise ModelFormatError("its content does not match the Hub's checksum")
    except ModelFormatError as exc:
        purge_snapshot(folder, CONFIG)
        raise HubError(f"{spec}: config.json is damaged or not a TriNAS config ({exc}); {retry}") from exc
    expected = config.get("weights_sha256")
    if not expected:
        raise HubError(f"{spec}: config.json has no weights_sha256, so its weights cannot be verified; "
                       f"republish it with `upscale models push`")
    if sha256_file(folder / WEIGHTS) != expected:
        purge_snapshot(folder, WEIGHTS)
        raise HubError(f"{spec}: {WEIGHTS} does not match the sha256 in config.json (corrupt, truncated or "
                       f"tampered download); {retry}")
    return folder


def _matches_blob_name(path: Path) -> bool:
    """A cached file against the Hub checksum its blob is named by (git sha1, or sha256 for LFS files)."""
    if not path.is_symlink():
        return True  # a copied file (no symlinks on this file system): nothing to compare against
    name = Path(os.path.realpath(path)).name
    data = path.read_bytes()
    if re.fullmatch(r"[0-9a-f]{40}", name):
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        return hashlib.sha256(data).hexdigest() == name
    return True


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, with every link and `..` resolved, lies inside `folder`."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _is_snapshot(folder: Path) -> bool:
    """A real snapshot of our cache: named by a full commit hash, inside `<cache>/models--*/snapshots/`."""
    folder = Path(folder)
    storage = folder.parent.parent
    return (bool(_COMMIT.match(folder.name)) and folder.parent.name == "snapshots"
            and storage.name.startswith("models--") and _inside(folder, storage / "snapshots")
            and _inside(storage, cache_dir()))


def purge_snapshot(folder: Path, *damaged: str) -> None:
    """Remove a cached snapshot and the blobs of its `damaged` files, so nothing half-valid stays loadable.

    Only ever deletes a snapshot folder of the cache (named by a commit hash) and blobs inside that repo's
    `blobs/`: a Hub that answers a crafted commit id cannot make it delete anything else."""
    folder = Path(folder)
    if not _is_snapshot(folder):
        return
    blobs = folder.parent.parent / "blobs"
    for name in damaged:
        if (folder / name).is_symlink() and _inside(folder / name, blobs):
            Path(os.path.realpath(folder / name)).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _discard_incomplete(storage: Path, spec: HubSpec) -> None:
    """After a failed download, drop the snapshot it was filling if it lacks the config or the weights.

    The commit comes from the spec or from the ref file the Hub's answer wrote; anything but a 40-hex commit
    id there is not ours to act on."""
    commit = spec.revision if spec.pinned else None
    ref = storage / "refs" / (spec.revision or constants.DEFAULT_REVISION)
    if commit is None and ref.is_file() and _inside(ref, storage / "refs"):
        commit = ref.read_text().strip()
    if not commit or not _COMMIT.match(commit):
        return
    snapshot = storage / "snapshots" / commit
    if snapshot.is_dir() and _is_snapshot(snapshot) and not _complete(snapshot):
        shutil.rmtree(snapshot, ignore_errors=True)


# ---- errors ----------------------------------------------------------------------------------------------------

def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and all(exc is not s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _find(chain: list[BaseException], kind: type | tuple[type, ...]) -> Any:
    return next((e for e in chain if isinstance(e, kind)), None)


def _transport_errors() -> tuple[type, ...]:
    """Connection-level failures of whichever HTTP client this huggingface_hub version uses."""
    kinds: list[type] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError"),
                         ("requests", "Timeout")):
        try:
            kinds.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


def _timeouts() -> tuple[type, ...]:
    """Timeouts of whichever HTTP client this huggingface_hub version uses."""
    kinds: list[type] = [TimeoutError]
    for module, name in (("httpx2", "TimeoutException"), ("httpx", "TimeoutException"), ("requests", "Timeout")):
        try:
            kinds.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


def explain(exc: BaseException, spec: HubSpec, *, offline: bool = False, push: bool = False) -> str:
    """One line for a failed Hub call: what went wrong with which repo, and what to do about it."""
    from huggingface_hub import errors as hf

    chain = _chain(exc)
    pull = f"`upscale models pull {spec}`"
    where = f"{endpoint()}/{spec.repo}"
    disk = next((e for e in chain if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    if disk is not None:
        return (f"disk full while downloading {spec} into {cache_dir()}; nothing was kept: free some space or "
                f"point HF_HOME/HF_HUB_CACHE at a larger disk, then run {pull}")
    if push and (offline or _find(chain, hf.OfflineModeIsEnabled)):
        return f"cannot push to {spec.repo} in offline mode: drop --offline / unset HF_HUB_OFFLINE"
    if offline or _find(chain, hf.OfflineModeIsEnabled):
        return (f"{spec} is not in the cache and offline mode is on (--offline / HF_HUB_OFFLINE): "
                f"run {pull} once while online")
    if _find(chain, hf.GatedRepoError):
        return f"{spec} is gated: accept its terms at {where} and log in (`hf auth login` or HF_TOKEN)"
    if _find(chain, hf.RevisionNotFoundError):
        return (f"{spec}: the repository has no revision {spec.revision or constants.DEFAULT_REVISION!r}; "
                f"check the branch, tag or commit at {where}")
    if _find(chain, hf.RepositoryNotFoundError):
        if push:
            return (f"cannot push to {spec.repo}: not found or no write access; check the name and that your "
                    f"token (HF_TOKEN or `hf auth login`) has write permission there")
        return (f"{spec}: no such repository on the Hub (or it is private): check the name, or log in with "
                f"`hf auth login` / HF_TOKEN if it is private")
    if any(isinstance(e, hf.EntryNotFoundError) and not isinstance(e, hf.LocalEntryNotFoundError) for e in chain):
        return f"{spec}: a file the model needs is missing from the repository ({', '.join(MODEL_FILES)})"
    http = _find(chain, hf.HfHubHTTPError)
    status = getattr(getattr(http, "response", None), "status_code", None) if http is not None else None
    if status == 401:
        return (f"{spec}: the Hub rejected the credentials (401): log in again with `hf auth login` or fix "
                f"HF_TOKEN")
    if status == 403:
        what = "write to" if push else "read"
        return (f"{spec}: access denied (403): your token may not {what} {spec.repo}; use a token with that "
                f"permission (HF_TOKEN or `hf auth login`)")
    if status == 429:
        return f"{spec}: the Hub is rate-limiting requests (429); wait a minute and try again"
    if status is not None and status >= 500:
        return (f"{spec}: the Hub answered {status} (server error); try again later" +
                ("" if push else ", or use a cached copy with --offline"))
    if status is not None:
        return f"{spec}: the Hub answered {status}: {str(http).strip().splitlines()[0]}"
    if _find(chain, _timeouts()):
        return (f"the Hub at {endpoint()} did not answer within {hub_timeout():.0f} s for {spec}; try again later "
                "(UPSCALE_HUB_TIMEOUT sets the wait)" + ("" if push else "; a model fetched before works with --offline"))
    if _find(chain, _transport_errors()):
        return (f"cannot reach the Hub at {endpoint()} for {spec}: check the network (or HF_ENDPOINT)" +
                ("" if push else "; a model fetched before works with --offline"))
    consistency = next((e for e in chain if isinstance(e, OSError) and "Consistency check failed" in str(e)), None)
    if consistency is not None:
        return f"download of {spec} was cut short (truncated file); nothing was kept: run {pull} to retry"
    if _find(chain, hf.HFValidationError):
        return f"bad Hub repo id in {spec}: expected owner/name"
    if _find(chain, hf.LocalEntryNotFoundError):
        return f"{spec} is not in the cache and the Hub could not be reached; run {pull} when online"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{spec}: {first}"


# ---- cache inspection ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CachedSnapshot:
    """A cached revision of a Hub repository that a fetch would accept as it is."""

    repo: str
    commit: str
    refs: tuple[str, ...]
    folder: Path
    config: dict[str, Any]


def usable_snapshots() -> list[CachedSnapshot]:
    """Model snapshots in the Hub cache that a fetch would accept (config readable, weights matching their
    sha256), by repository and commit; other libraries' repos and damaged snapshots are left out."""
    try:
        info = huggingface_hub.scan_cache_dir(cache_dir())
    except huggingface_hub.CacheNotFound:
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            folder = revision.snapshot_path
            if not _complete(folder):
                continue
            try:  # a damaged config never breaks a listing
                config = read_config(folder)
                if not config.get("weights_sha256") or sha256_file(folder / WEIGHTS) != config["weights_sha256"]:
                    continue
            except (ModelFormatError, OSError):
                continue
            refs = tuple(sorted(revision.refs, key=lambda r: (r != constants.DEFAULT_REVISION, r)))
            found.append(CachedSnapshot(repo.repo_id, revision.commit_hash, refs, folder, config))
    return found


# ---- publish ---------------------------------------------------------------------------------------------------

def push(folder: Path | str, repo: str, *, private: bool = False, message: str | None = None,
         token: str | None = None) -> PushResult:
    """Publish a model folder (e.g. a search result) to `owner/name`: config.json, model.safetensors, and a
    README.md card generated from the config. The token is the standard one (argument, HF_TOKEN, or login)."""
    from trinas.export import load_model

    folder = Path(folder)
    spec = parse_spec(repo)
    if spec.revision:
        raise HubError(f"push takes a repository, not a revision: --repo {spec.repo}")
    load_model(folder)  # refuses a folder that would not load: bad config, sha256 mismatch, pickled weights
    config = read_config(folder)
    if not config.get("weights_sha256"):
        raise HubError(f"{folder}/config.json has no weights_sha256, so a fetch would refuse the model; write the "
                       "folder with trinas.export.save_model (or a search, training or prune command)")
    if is_offline():
        raise HubError(explain(ConnectionError(), spec, offline=True, push=True))  # before any request
    token = token or huggingface_hub.get_token()
    if not token:
        raise HubError(f"pushing to {spec.repo} needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")
    _bounded_requests()
    api = huggingface_hub.HfApi(endpoint=endpoint(), token=token, library_name=LIBRARY,
                                library_version=_library_version())
    with tempfile.TemporaryDirectory(prefix="trinas-push-") as tmp:
        stage = Path(tmp)
        shutil.copyfile(folder / CONFIG, stage / CONFIG)
        shutil.copyfile(folder / WEIGHTS, stage / WEIGHTS)
        pictures = pictures_in(folder)
        for name in pictures:
            shutil.copyfile(folder / name, stage / name)
        (stage / CARD).write_text(model_card(config, pictures))
        try:
            api.create_repo(spec.repo, private=True if private else None, exist_ok=True)
            # delete_patterns: files of earlier commits that are not ours (old pickled weights, say) go, so the
            # repository holds exactly the model (huggingface_hub keeps .gitattributes).
            info = api.upload_folder(repo_id=spec.repo, folder_path=stage, allow_patterns=[*MODEL_FILES, *pictures],
                                     delete_patterns=["*"],
                                     commit_message=message or f"Upload {config.get('name', folder.name)} "
                                                               f"(x{config['scale']}) with {LIBRARY}")
        except Exception as exc:
            raise HubError(explain(exc, spec, push=True)) from exc
    return PushResult(repo=spec.repo, commit=info.oid, url=info.commit_url, files=(*MODEL_FILES, *pictures))
