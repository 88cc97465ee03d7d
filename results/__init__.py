"""Where a study lands: the study folder layout, its metadata, trial table and history, and the lock.

``results`` is the only package that knows the on-disk layout; ``search`` writes through it and
``analysis`` / ``benchmarks`` read through it.
"""

from results.files import (
    append_bytes,
    append_text,
    check_writable,
    copy_atomic,
    open_folder,
    read_limited,
    write_atomic,
    write_files,
)
from results.folder import (
    DEFAULT_ROOT,
    IN_FOLDER_STORAGE,
    StudyPaths,
    check_root_writable,
    is_uri,
    list_studies,
    read_meta,
    storage_url,
    study_paths,
    validate_name,
    write_meta,
)
from results.lock import StudyLock, lock_holder, refuse_if_locked
from results.mounts import Mount, filesystem_of, mount_of, parse_mountinfo
from results.tables import (
    COMPLETE,
    FAILED,
    HISTORY_COLUMNS,
    PENDING,
    PRUNED,
    RUNNING,
    STATUSES,
    TRIAL_COLUMNS,
    Study,
    history_frame,
    load_study,
    trials_frame,
    write_tables,
)

__all__ = [
    "COMPLETE", "DEFAULT_ROOT", "FAILED", "HISTORY_COLUMNS", "IN_FOLDER_STORAGE", "PENDING", "PRUNED", "RUNNING",
    "STATUSES", "TRIAL_COLUMNS", "Mount", "Study", "StudyLock", "StudyPaths", "append_bytes", "append_text",
    "check_root_writable", "check_writable", "copy_atomic", "filesystem_of", "history_frame", "is_uri",
    "list_studies", "load_study",
    "lock_holder", "mount_of", "open_folder", "parse_mountinfo", "read_limited", "read_meta", "refuse_if_locked",
    "storage_url", "study_paths", "trials_frame", "validate_name", "write_atomic", "write_files", "write_meta",
    "write_tables",
]
