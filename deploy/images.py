"""Build the API and UI images with podman on a machine with no registry and no network inside builds.

    .venv/bin/python -m deploy.images        # = make images

* Base images: ``debootstrap --variant=minbase`` of Debian (``config.DEBIAN_SUITE``) from the mirror the host's
  apt already uses, trimmed (no .deb cache, apt lists, docs, man pages, translations) and ``podman import``-ed.
  The API base adds the bento's ``docker.system_packages`` and the ``uv`` binary that BentoML's generated
  Dockerfile installs packages with; the UI base is Python alone.
* Wheelhouses: ``pip wheel`` of the pinned requirements on the host (PyPI is reachable here, not from builds),
  mounted into the build; nothing of them stays in the images.
* API image: ``bentoml build`` with a copy of ``bentofile.yaml`` whose only change is ``docker.base_image``
  (the local base), then ``bentoml containerize --backend podman``: BentoML's own Dockerfile, the same
  user (uid 1034), layout and entrypoint as the Docker path. The requirements file is the one
  ``bentofile.yaml`` names, so the image holds exactly what the bento asks for.
* UI image: ``ui/Dockerfile`` with ``--build-arg BASE_IMAGE=<local base>`` and the wheelhouse as ``/wheels``.

Base images (podman's store) and wheelhouses (``config.CONTAINER_CACHE``) are keyed by a hash of what they are
made from and reused; the image builds themselves use podman's layer cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from skinscan import config

ROOT = config.ROOT
CONTAINERS_CONF = ROOT / "deploy" / "containers.conf"
NICE = ["nice", "-n", "15"]
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
UI_BUILD_WHEELS = ["setuptools>=61", "wheel"]  # ui/Dockerfile pip-installs the skinscan package from source
DEFAULT_MIRROR = "http://deb.debian.org/debian"
TRIM = ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/man", "usr/share/info", "usr/share/locale",
        "usr/share/doc"]


def env() -> dict:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "BENTOML_DO_NOT_TRACK": "True"}


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["podman", *args]
    out = subprocess.run(cmd, env=env(), text=True, capture_output=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{(out.stderr or '')[-3000:]}")
    return out


def run(cmd: list, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True, env=kw.pop("env", env()), **kw)


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --- base images ------------------------------------------------------------------------------------------------
def debian_mirror() -> str:
    """The first Debian mirror in the host's apt sources that serves ``config.DEBIAN_SUITE`` (one-line or deb822)."""
    suite = config.DEBIAN_SUITE
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file() or not f.name.endswith((".list", ".sources")):
            continue
        text = f.read_text(errors="replace")
        if f.name.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = dict(line.split(":", 1) for line in stanza.splitlines()
                              if ":" in line and not line.startswith((" ", "#")))
                uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
                if uris and suite in suites and "deb" in fields.get("Types", "deb").split():
                    return uris[0]
        else:
            for line in text.splitlines():
                words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                    return words[1]
    return DEFAULT_MIRROR


def uv_binary() -> str:
    """The venv's ``uv`` (pinned in requirements.txt): BentoML's Dockerfile installs packages with it."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        raise RuntimeError("uv not found next to the venv's python: install requirements.txt (make venv)")
    return uv


def trim(rootfs: Path) -> None:
    for rel in TRIM:
        folder = rootfs / rel
        for p in folder.glob("*") if folder.is_dir() else []:
            if rel == "usr/share/doc" and (p / "copyright").is_file():  # keep the licences, drop the rest
                for q in p.iterdir():
                    if q.name != "copyright":
                        shutil.rmtree(q) if q.is_dir() and not q.is_symlink() else q.unlink()
                continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def base_image(name: str, packages: list[str], with_uv: bool = False) -> str:
    """``localhost/<name>:<hash of suite, mirror, packages>``, debootstrapped and imported unless it exists."""
    uv_version = ""
    if with_uv:
        uv_version = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    mirror = debian_mirror()
    ref = f"localhost/{name}:{digest(config.DEBIAN_SUITE, mirror, sorted(packages), uv_version)}"
    if image_exists(ref):
        print(f"base image {ref}: cached", flush=True)
        return ref
    t0 = time.time()
    rootfs = config.CONTAINER_CACHE / f"rootfs-{name}"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    try:
        run([*NICE, "debootstrap", "--variant=minbase", f"--include={','.join(packages)}", config.DEBIAN_SUITE,
             rootfs, mirror], stdout=subprocess.DEVNULL)
        trim(rootfs)
        if with_uv:
            shutil.copy2(uv_binary(), rootfs / "usr" / "local" / "bin" / "uv")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run([*NICE, "podman", "import", "--change", "ENV=LANG=C.UTF-8",
             "--change", "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--change", 'CMD=["/bin/bash"]', "-", ref], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    print(f"base image {ref}: built in {time.time() - t0:.0f} s", flush=True)
    for old in podman("images", "--format", "{{.Repository}}:{{.Tag}}", f"localhost/{name}").stdout.split():
        if old != ref:  # an earlier package set; kept while an image still builds on it
            podman("rmi", old, check=False)
    return ref


def image_python(ref: str) -> str:
    out = podman("run", "--rm", "--network", "none", ref, "python3", "-c",
                 "import sys; print('%d.%d' % sys.version_info[:2])")
    return out.stdout.strip()


# --- wheelhouses -------------------------------------------------------------------------------------------------
def wheelhouse(name: str, requirements: Path, extra: list[str] = (), constraints: Path | None = None) -> Path:
    """All wheels ``requirements`` (+ ``extra``) resolve to, built on the host for its Python; cached by content."""
    texts = [requirements.read_text(), constraints.read_text() if constraints else "", list(extra)]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    prefix = f"wheels-{name}-"
    out = config.CONTAINER_CACHE / f"{prefix}{tag}-{digest(*texts)}"
    if (out / ".complete").is_file():
        print(f"wheelhouse {out.name}: cached", flush=True)
        return out
    t0 = time.time()
    for old in config.CONTAINER_CACHE.glob(f"{prefix}*"):  # one wheelhouse per image
        shutil.rmtree(old, ignore_errors=True)
    part = out.with_name(out.name + ".part")
    cmd = [*NICE, sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", part,
           "-r", requirements, *extra]
    if constraints:
        cmd += ["-c", constraints]
    run(cmd)
    (part / ".complete").touch()
    part.rename(out)
    print(f"wheelhouse {out.name}: {len(list(out.glob('*.whl')))} wheels in {time.time() - t0:.0f} s", flush=True)
    return out


def check_python(base: str) -> None:
    """The wheelhouses are built for the host's Python: the image's must be the same minor version."""
    host, image = "%d.%d" % sys.version_info[:2], image_python(base)
    if host != image:
        raise RuntimeError(f"{base} has Python {image}, the host {host}: build the wheelhouse with Python {image}")


# --- the two images ----------------------------------------------------------------------------------------------
def bentofile() -> dict:
    return yaml.safe_load((ROOT / "bentofile.yaml").read_text())


def api_requirements() -> Path:
    """The requirements file the bento installs (``python.requirements_txt`` in bentofile.yaml)."""
    return ROOT / bentofile()["python"]["requirements_txt"]


def bentoml_compilers_line() -> str:
    """The command BentoML's Dockerfile starts with on Debian: apt-get install build-essential git (~640 MB)."""
    from bentoml._internal.container.frontend.dockerfile import CONTAINER_METADATA

    return CONTAINER_METADATA["debian"]["default_install_command"]


def build_api(requirements: Path | None = None, tag: str = config.API_IMAGE) -> str:
    """The API image; ``requirements`` replaces bentofile.yaml's (to measure another package set)."""
    spec = bentofile()
    if requirements:
        spec["python"]["requirements_txt"] = os.path.relpath(requirements, ROOT)  # BentoML wants it relative
    docker = spec.get("docker") or {}
    base = base_image("skinscan-api-base", BASE_PACKAGES + list(docker.get("system_packages") or []),
                      with_uv=True)
    check_python(base)
    wheels = wheelhouse("api", requirements or api_requirements())
    # uv (what BentoML's Dockerfile installs with) reads /etc/uv/uv.toml: only the mounted wheelhouse, system Python
    (wheels / "uv.toml").write_text('no-index = true\nfind-links = ["/etc/uv"]\npython-downloads = "never"\n'
                                    'python-preference = "only-system"\n')
    # bentofile.yaml with FROM the local base; BentoML ignores distro/system_packages when base_image is set
    spec["docker"] = {k: v for k, v in docker.items() if k not in ("distro", "system_packages", "cuda_version")}
    spec["docker"]["base_image"] = base
    build_dir = config.CONTAINER_CACHE / "bento"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    podman_bentofile = build_dir / "bentofile.podman.yaml"
    podman_bentofile.write_text(yaml.safe_dump(spec, sort_keys=False))
    bento_env = {**env(), "BENTOML_HOME": str(build_dir / "bentoml")}
    out = subprocess.run([*NICE, sys.executable, "-m", "bentoml", "build", "-f", str(podman_bentofile), "--output",
                          "tag"], cwd=ROOT, env=bento_env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{out.stderr[-3000:]}")
    name, version = out.stdout.strip().splitlines()[-1].replace("__tag__:", "").split(":")
    bento = build_dir / "bentoml" / "bentos" / name / version
    # What `bentoml containerize` does (the bento is the build context, its env/docker/Dockerfile the recipe),
    # less the one line that apt-installs compilers for source packages: the wheelhouse holds only wheels.
    dockerfile = bento / "env" / "docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(f"RUN {bentoml_compilers_line()}\n", ""))
    run([*NICE, "podman", "build", "--format", "docker", "-f", dockerfile, "-t", tag,
         "--volume", f"{wheels}:/etc/uv:ro", bento], cwd=ROOT)
    return tag


def build_ui() -> str:
    base = base_image("skinscan-base", BASE_PACKAGES)
    check_python(base)
    wheels = wheelhouse("ui", ROOT / "ui" / "requirements.txt", UI_BUILD_WHEELS, constraints=ROOT / "requirements.txt")
    # --format docker keeps the HEALTHCHECK (OCI images have none); --ignorefile: the Docker path's context filter
    run([*NICE, "podman", "build", "--format", "docker", "-f", "ui/Dockerfile", "--ignorefile",
         "ui/Dockerfile.dockerignore", "-t", config.UI_IMAGE, "--build-arg", f"BASE_IMAGE={base}",
         "--build-arg", "PIP_NO_INDEX=1", "--build-arg", "PIP_FIND_LINKS=/wheels", "--volume", f"{wheels}:/wheels:ro",
         "."], cwd=ROOT)
    return config.UI_IMAGE


def image_size_mb(ref: str) -> float:
    return json.loads(podman("image", "inspect", ref).stdout)[0]["Size"] / 1e6


def build_all() -> dict:
    """Build (or reuse) both images; returns {image: seconds} for this run."""
    if not shutil.which("podman"):
        raise RuntimeError("podman not found: `make podman` (apt-get install podman runc debootstrap)")
    times = {}
    for build in (build_ui, build_api):
        t0 = time.time()
        ref = build()
        times[ref] = round(time.time() - t0, 1)
    podman("image", "prune", "-f")  # the untagged images earlier builds left behind
    return times


def main() -> None:
    t0 = time.time()
    times = build_all()
    for ref, seconds in times.items():
        print(f"{ref}: {image_size_mb(ref):.0f} MB, {seconds:.0f} s")
    print(f"images ready in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
