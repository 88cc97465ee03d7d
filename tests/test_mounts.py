"""Which filesystem a study's SQLite file lies on, from real mountinfo lines; SQLite on NFS is warned about and
refused for multi-node clusters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cae.errors import UsageError
from results.mounts import filesystem_of, mount_of, parse_mountinfo
from search.storage import open_storage, refuse_network_sqlite, sqlite_on_network, sqlite_wal, warn_network_sqlite

# Lines as the kernel writes them: a Docker container's overlay root with an NFS home, a workstation with an
# SMB share and an sshfs mount, a cluster's Lustre scratch, a path with a space (\040).
MOUNTINFO = r"""1045 950 0:120 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/9f/diff,workdir=/var/lib/docker/overlay2/9f/work
27 1045 254:0 / /data rw,relatime - ext4 /dev/vda rw,discard
36 1045 0:45 / /home rw,relatime shared:30 - nfs4 fileserver:/export/home rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.5,local_lock=none,addr=10.0.0.2
112 1045 0:52 / /mnt/smb rw,relatime shared:60 - cifs //nas/projects rw,vers=3.1.1,cache=strict,username=ann,uid=1000,noforceuid,gid=1000,noforcegid,addr=192.168.1.10,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,bsize=1048576,echo_interval=60,actimeo=1
120 36 0:55 / /home/ann/remote rw,nosuid,nodev,relatime shared:65 - fuse.sshfs ann@cluster:/scratch rw,user_id=1000,group_id=1000
130 1045 0:60 / /lustre rw,relatime shared:70 - lustre 10.1.0.1@o2ib:/scratch rw,flock,lazystatfs
140 1045 0:61 / /mnt/my\040disk rw,relatime - ext4 /dev/sdb1 rw
150 36 0:62 / /home/ann/local rw,relatime - tmpfs tmpfs rw,size=1024k
"""  # noqa: E501  (whole lines, as the kernel writes them)


@pytest.mark.parametrize(
    ("path", "point", "fstype", "network"),
    [
        ("/home/ann/results/s1", "/home", "nfs4", True),
        ("/mnt/smb/team/results", "/mnt/smb", "cifs", True),
        ("/home/ann/remote/results", "/home/ann/remote", "fuse.sshfs", True),  # the longest prefix wins
        ("/home/ann/local/s1/optuna.db", "/home/ann/local", "tmpfs", False),  # local, inside the NFS home
        ("/lustre/proj/results", "/lustre", "lustre", True),
        ("/data/results", "/data", "ext4", False),
        ("/database/results", "/", "overlay", False),  # /data is not a prefix of /database
        ("/work/results", "/", "overlay", False),
        ("/mnt/my disk/results", "/mnt/my disk", "ext4", False),
        ("/home", "/home", "nfs4", True),
    ],
)
def test_the_mount_of_a_path_is_its_longest_mount_point(path: str, point: str, fstype: str, network: bool) -> None:
    mount = mount_of(path, MOUNTINFO)
    assert mount is not None and (mount.point, mount.fstype, mount.network) == (point, fstype, network)


def test_the_last_of_stacked_mounts_hides_the_others() -> None:
    stacked = MOUNTINFO + "160 36 0:63 / /home rw,relatime - ext4 /dev/sdc1 rw\n"
    mount = mount_of("/home/ann/results", stacked)
    assert mount is not None and mount.fstype == "ext4" and not mount.network


def test_lines_that_are_not_mountinfo_are_skipped() -> None:
    assert [m.point for m in parse_mountinfo("garbage\n\n" + MOUNTINFO.splitlines()[0])] == ["/"]


def test_this_machines_mount_table_names_the_device_of_a_path(tmp_path: Path) -> None:
    for path in (tmp_path, Path(__file__).resolve()):
        mount = filesystem_of(path)
        assert mount is not None and Path(mount.point) in (path, *path.parents)
        if mount.fstype != "btrfs":  # btrfs subvolumes report an anonymous device to stat()
            dev = os.stat(path).st_dev
            assert mount.device == f"{os.major(dev)}:{os.minor(dev)}", (path, mount)
    # a folder that does not exist yet lies on the filesystem of the nearest one that does
    assert filesystem_of(tmp_path / "new" / "study") == filesystem_of(tmp_path)


def test_sqlite_on_nfs_is_warned_about_and_refused_for_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    nfs, local = "sqlite:////home/ann/results/s1/optuna.db", "sqlite:////data/results/s1/optuna.db"
    found = sqlite_on_network(nfs, MOUNTINFO)
    assert found is not None and found[0] == Path("/home/ann/results/s1/optuna.db") and found[1].fstype == "nfs4"
    for url in (local, "postgresql://ann@db:5432/sweeps", None):
        assert sqlite_on_network(url, MOUNTINFO) is None
        refuse_network_sqlite(url, nodes=3, mountinfo=MOUNTINFO)  # nothing to refuse

    warn_network_sqlite(nfs, MOUNTINFO)
    warn_network_sqlite(local, MOUNTINFO)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "nfs4" in err[0] and "--storage postgresql" in err[0]

    refuse_network_sqlite(nfs, nodes=1, mountinfo=MOUNTINFO)  # one node: the warning is enough
    with pytest.raises(UsageError, match=r"network filesystem \(nfs4 at /home\).*3 nodes.*--storage postgresql"):
        refuse_network_sqlite(nfs, nodes=3, mountinfo=MOUNTINFO)


def test_a_local_sqlite_file_is_kept_in_wal_mode_and_a_network_one_is_not(tmp_path: Path) -> None:
    assert sqlite_wal("sqlite:////data/results/s1/optuna.db", MOUNTINFO)
    assert sqlite_wal("sqlite:////home/ann/local/s1/optuna.db", MOUNTINFO)  # tmpfs inside the NFS home
    for url in ("sqlite:////home/ann/results/s1/optuna.db", "sqlite:////lustre/p/optuna.db",
                "postgresql://ann@db:5432/sweeps", "sqlite:///:memory:"):
        assert not sqlite_wal(url, MOUNTINFO), url
    # On this machine's disk: the file is in WAL mode, every connection of the storage syncs NORMALly, and a
    # study written through it is read back by a plain Optuna storage (the dashboard's) with every trial.
    import sqlite3

    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    for value in (0.3, 0.1):
        study.tell(study.ask(), value)
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert sqlite3.connect(tmp_path / "optuna.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url))
    assert [t.value for t in plain.trials] == [0.3, 0.1]


def test_a_command_ends_with_the_study_whole_in_its_database_file(tmp_path: Path) -> None:
    # While a storage's connections are open the commits lie in optuna.db-wal; when a command ends
    # (cae.cli.run) they are closed, the log is folded into optuna.db and removed. Reading the study again and
    # closing leaves the database file as it was: nothing a read does is a write.
    import optuna

    from cae.cli import run

    path = tmp_path / "optuna.db"
    url = f"sqlite:///{path}"
    assert sqlite_wal(url)  # tmp_path lies on a local filesystem here

    def command(_argv: object) -> int:
        study = optuna.create_study(storage=open_storage(url), study_name="s")
        study.tell(study.ask(), 0.5)
        assert (tmp_path / "optuna.db-wal").stat().st_size > 0  # the commits are in the log for now
        return 0

    assert run(command, []) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]
    before = path.stat().st_mtime_ns, path.read_bytes()

    def reader(_argv: object) -> int:
        assert [t.value for t in optuna.load_study(study_name="s", storage=open_storage(url)).trials] == [0.5]
        return 0

    assert run(reader, []) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
