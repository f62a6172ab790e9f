"""maskdet: an edge face-mask detector for Raspberry Pi and Google Coral."""
from setuptools import find_packages, setup

# The interpreter: ai-edge-litert where it has wheels (Python 3.10+, x86_64 / aarch64), else
# tflite-runtime 2.14, whose wheels fail with numpy 2 (SystemError creating the interpreter),
# hence numpy<2 on exactly those platforms.
_LITERT = 'python_version >= "3.10" and platform_machine in "x86_64 aarch64 AMD64"'
_TFLITE_RUNTIME = 'python_version < "3.10" or platform_machine not in "x86_64 aarch64 AMD64"'
# onnxruntime runs the YuNet face detector about twice as fast as OpenCV's DNN module; it
# has wheels for 64-bit x86 and ARM only (elsewhere YuNet runs on OpenCV). onnx sets the input
# size of the YuNet file, which declares 640 x 640.
_ONNXRUNTIME = 'platform_machine in "x86_64 aarch64 AMD64"'
# The central monitor (`maskdet monitor`): aiohttp serves the page, the API and the live feed
# (one asyncio server, wheels for ARM); SQLAlchemy Core + Alembic keep one schema and one set of
# migrations for SQLite and PostgreSQL; psycopg 3 reaches PostgreSQL (its binary wheels where
# they exist, else the pure-Python package over the system's libpq5); jsonschema checks payloads
# against the daemon's schemas.
_PSYCOPG_BINARY = 'platform_machine in "x86_64 aarch64 AMD64"'
_PSYCOPG_PURE = 'platform_machine not in "x86_64 aarch64 AMD64"'
MONITOR = [
    "aiohttp>=3.9,<4",
    "SQLAlchemy>=2.0,<3",
    "alembic>=1.13,<2",
    f"psycopg[binary]>=3.1,<4; {_PSYCOPG_BINARY}",
    f"psycopg>=3.1,<4; {_PSYCOPG_PURE}",
    "jsonschema>=4.20",
]

setup(
    name="maskdet",
    version="0.1.0",
    description="Edge face-mask detector: Raspberry Pi, Coral Edge TPU, GPIO and MQTT",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["edge", "edge.*", "convert", "convert.*", "monitor", "monitor.*"]),
    package_data={"edge": ["service/schemas/*.json", "inference/schemas/*.json"],
                  "monitor": ["static/*", "migrations/README", "migrations/*.py",
                              "migrations/script.py.mako", "migrations/versions/*.py"]},
    install_requires=[
        f"ai-edge-litert>=2.3; {_LITERT}",
        f"tflite-runtime==2.14.0; {_TFLITE_RUNTIME}",
        f"numpy<2; {_TFLITE_RUNTIME}",
        "numpy>=1.23",
        # 4.x: the tested API of cv2.FaceDetectorYN and cv2.dnn; 5.x changed packaging (no
        # cv2.data cascades) and has not been tested here.
        "opencv-python-headless>=4.8,<5",
        f"onnxruntime>=1.16; {_ONNXRUNTIME}",
        f"onnx>=1.15; {_ONNXRUNTIME}",
        "PyYAML>=6",
        # 2.x: the callback API version 2 and ReasonCode objects the publisher uses.
        "paho-mqtt>=2.0,<3",
    ],
    extras_require={
        "convert": [
            # The CPU build: the workstation / CI half never needs CUDA.
            "tensorflow-cpu==2.21.0",
            "h5py>=3.10",
            "matplotlib>=3.7",
            "tqdm>=4.60",
            # Reads .tflite flatbuffers (ops, options, tensors) for check-edgetpu.
            "tflite==2.18.0",
            # The model metadata is checked against its JSON Schema before it is written.
            "jsonschema>=4.20",
        ],
        "pi": ["gpiozero>=2.0", "lgpio>=0.2"],
        "monitor": MONITOR,
        # gpiozero for its MockFactory: the GPIO tests drive real gpiozero devices on mock pins.
        # The monitor's libraries, and playwright, which drives Debian's Chromium in the page's
        # tests (its own browser download, `playwright install`, is never used). jinja2 renders
        # the Home Assistant discovery templates as HA would (tests/service/test_discovery.py).
        "test": ["pytest>=8", "jsonschema>=4.20", "gpiozero>=2.0", *MONITOR, "playwright>=1.40",
                 "jinja2>=3"],
    },
    entry_points={
        "console_scripts": [
            "maskdet=edge.cli:main",
            "maskdet-convert=convert.cli:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
