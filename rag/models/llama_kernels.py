"""AVX-512 kernels for llama.cpp on CPUs that have them, chosen when the process starts.

Why: llama-cpp-python is compiled with AVX2 kernels only (Makefile `CMAKE_ARGS`): a `.venv`
can move between machines with the folder that holds it, and a build for the compiling machine
(`GGML_NATIVE`) even died with SIGILL on the Intel VM it was built on, which lists AMX. On that
2-core VM the model read a 345-token prompt in 3.0 s with AVX-512 kernels against 4.4-4.6 s
with AVX2 ones (README "Time to first token").

How: `make install` also compiles llama.cpp's CPU library (`libggml-cpu.so`) from the same
llama-cpp-python source with AVX-512 F/VBMI/VNNI/BF16 (`python -m rag.models.llama_kernels
build`, about a minute on 2 cores). Before llama_cpp is first imported, `prepare()` loads that
library when this CPU lists every one of those features and the build matches the installed
llama-cpp-python; the dynamic linker then binds llama.cpp to it, because a library of the same
name (soname) is already loaded. Otherwise nothing is loaded and llama.cpp uses its own AVX2
library. ggml's own way to choose at run time (`GGML_BACKEND_DL` with CPU variants) compiles
about a dozen variants and llama-cpp-python does not install them, so it would need patching
both; this needs no patch.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rag.models.cpu import cpu_flags

logger = logging.getLogger(__name__)

CHOICES = ("auto", "avx2")
KERNELS = "avx512"
# /proc/cpuinfo flags the AVX-512 build's instructions need (GGML_AVX512 turns on F, CD, BW, DQ, VL).
REQUIRED_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512vbmi",
                  "avx512_vnni", "avx512_bf16")
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAVA_BUILD=OFF", "-DGGML_NATIVE=OFF",
               "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
               "-DGGML_BMI2=ON", "-DGGML_AVX512=ON", "-DGGML_AVX512_VBMI=ON",
               "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX512_BF16=ON")
PACKAGE = "llama-cpp-python"


@dataclass(frozen=True)
class KernelChoice:
    kernels: str  # "avx512" or "avx2"
    reason: str  # why, in words (for `rag config` and logs)
    library: Path | None = None  # the library to load for AVX-512

    def describe(self) -> str:
        return f"{self.kernels} ({self.reason})"


def build_dir(prefix: Path | None = None) -> Path:
    """Where this environment keeps its AVX-512 build (its build.json names the version)."""
    return Path(prefix or sys.prefix) / "lib" / "rag-llama-kernels" / KERNELS


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_library_dir() -> Path | None:
    """llama_cpp's own `lib` folder, found without importing llama_cpp."""
    try:
        files = importlib.metadata.files(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name.startswith("libggml-base.so") and file.parent.name == "lib":
            return Path(file.locate()).parent
    return None


def sha256_file(path: Path) -> str:
    """The file's sha256, computed once per (path, size, modification time): `choose` runs
    more than once in a process (the eval's answer-cache key, then the preload) on a 3 MB file."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    from rag.models.cache import sha256_of

    return sha256_of([Path(path)])


def choose(setting: str = "auto", flags: set[str] | None = None, version: str | None = None,
           library_dir: Path | None = None, built: Path | None = None) -> KernelChoice:
    """Which kernels this process should use, and why; loads nothing."""
    if setting not in CHOICES:
        raise ValueError(f"llm_cpu_kernels must be one of {CHOICES}, not {setting!r}")
    if setting == "avx2":
        return KernelChoice("avx2", "llm_cpu_kernels = avx2")
    flags = cpu_flags() if flags is None else flags
    missing = [flag for flag in REQUIRED_FLAGS if flag not in flags]
    if missing:
        return KernelChoice("avx2", f"this CPU lacks {', '.join(missing)}")
    built = built or build_dir()
    try:
        stamp = json.loads((built / "build.json").read_text())
    except (OSError, ValueError):
        return KernelChoice("avx2", f"no AVX-512 build in {built} (make install builds it)")
    version = version if version is not None else installed_version()
    if stamp.get("version") != version:
        return KernelChoice("avx2", f"the AVX-512 build is for {PACKAGE} {stamp.get('version')}, "
                                    f"not {version} (make install rebuilds it)")
    library_dir = library_dir or installed_library_dir()
    base = library_dir / "libggml-base.so" if library_dir else None
    if base is None or not base.is_file() or sha256_file(base) != stamp.get("base_sha256"):
        return KernelChoice("avx2", f"the AVX-512 build does not match the installed {PACKAGE} "
                                    "(make install rebuilds it)")
    return KernelChoice(KERNELS, "AVX-512 F/VBMI/VNNI/BF16 on this CPU", built / "libggml-cpu.so")


_loaded: KernelChoice | None = None
_lock = threading.Lock()


def prepare(setting: str = "auto") -> KernelChoice:
    """Load the AVX-512 library if this process should use it; call before importing llama_cpp.

    Process-wide: the first call (or the first import of llama_cpp) fixes the kernels."""
    with _lock:
        return _prepare(setting)


def _prepare(setting: str) -> KernelChoice:
    global _loaded
    if _loaded is not None:
        return _loaded
    if "llama_cpp" in sys.modules:
        _loaded = KernelChoice("avx2", "llama_cpp was imported before the kernels were chosen")
        return _loaded
    choice = choose(setting)
    if choice.library is not None:
        try:
            # The installed base library first, so that the AVX-512 one binds to that very file.
            ctypes.CDLL(str(installed_library_dir() / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
            ctypes.CDLL(str(choice.library), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            choice = KernelChoice("avx2", f"the AVX-512 build did not load ({exc})")
    logger.info("llama.cpp kernels: %s", choice.describe())
    _loaded = choice
    return choice


def expected(setting: str = "auto") -> KernelChoice:
    """The kernels this process uses, or will use once a model loads (loads nothing)."""
    if _loaded is not None:
        return _loaded
    if "llama_cpp" in sys.modules:
        return KernelChoice("avx2", "llama_cpp was imported before the kernels were chosen")
    return choose(setting)


def loaded() -> KernelChoice | None:
    """The kernels this process chose, or None before any llama.cpp model loaded."""
    return _loaded


def build(prefix: Path | None = None, jobs: int | None = None) -> Path:
    """Compile the AVX-512 `libggml-cpu.so` from the installed llama-cpp-python's own source
    release (pip download) into `build_dir(prefix)`; returns that folder. A build for the same
    version and base library is kept in the model cache, so a fresh clone on this machine
    copies it instead of compiling again."""
    from rag.models.cache import cache_dir

    if platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(f"AVX-512 kernels are for x86-64, not {platform.machine()}")
    version = installed_version()
    library_dir = installed_library_dir()
    if version is None or library_dir is None:
        raise RuntimeError(f"{PACKAGE} is not installed")
    stamp = {"version": version, "base_sha256": sha256_file(library_dir / "libggml-base.so"),
             "cmake_flags": list(CMAKE_FLAGS), "required_cpu_flags": list(REQUIRED_FLAGS)}
    step = _stepper()
    cached = cache_dir() / "llama-kernels" / f"{KERNELS}-{version}-{stamp['base_sha256'][:16]}"
    if _matches(cached, stamp):
        step(f"reusing the build in {cached}")
    else:
        with tempfile.TemporaryDirectory(prefix="rag-llama-kernels-") as work:
            _publish(cached, _compile(Path(work), version, jobs, step), stamp)
    target = build_dir(prefix)
    _publish(target, cached / "libggml-cpu.so", stamp)
    step(f"done: {target}")
    return target


def _compile(work_dir: Path, version: str, jobs: int | None, step) -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake is not on PATH")
    jobs = jobs or int(os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or os.cpu_count() or 2)
    step(f"downloading the {PACKAGE} {version} source")
    # `--no-binary` names only this package: with `:all:` pip also compiled its build backend
    # (scikit-build-core, hatchling, ...) from source to prepare metadata, 71 s instead of 9 s
    # with an empty pip cache on 2 cores.
    _quiet([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
            "--quiet", "-d", str(work_dir), f"{PACKAGE}=={version}"])
    archive = next(work_dir.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work_dir, filter="data")
    source = next(p for p in work_dir.iterdir() if p.is_dir())
    step("configuring")
    _quiet([cmake, "-S", str(source), "-B", str(work_dir / "build"), *CMAKE_FLAGS])
    step(f"compiling libggml-cpu with AVX-512 ({jobs} jobs)")
    _quiet([cmake, "--build", str(work_dir / "build"), "--target", "ggml-cpu", "-j", str(jobs)])
    return next((work_dir / "build").rglob("libggml-cpu.so")).resolve()


def _matches(folder: Path, stamp: dict) -> bool:
    try:
        recorded = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return ((folder / "libggml-cpu.so").is_file() and recorded.get("version") == stamp["version"]
            and recorded.get("base_sha256") == stamp["base_sha256"])


def _publish(target: Path, library: Path, stamp: dict) -> None:
    """Put the library and its stamp in `target`, whole or not at all: a half-copied library
    is never picked."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_ensure(target.parent)))
    staging.chmod(0o755)
    shutil.copy2(library, staging / "libggml-cpu.so")
    (staging / "build.json").write_text(json.dumps(stamp, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _quiet(command: list[str]) -> None:
    """Run a build step; its output (thousands of compiler notes) is shown only if it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n" + "\n".join(tail))


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stepper():
    start = time.monotonic()
    return lambda text: print(f"[llama kernels {time.monotonic() - start:5.0f} s] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m rag.models.llama_kernels build|show`: build never fails an install (the AVX2
    kernels still work); it says why it did not build."""
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["build"]:
        try:
            build()
        except (RuntimeError, OSError, subprocess.CalledProcessError, StopIteration) as exc:
            print(f"llama kernels: not built, llama.cpp keeps its AVX2 kernels ({exc})", file=sys.stderr)
        return 0
    print(choose().describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
