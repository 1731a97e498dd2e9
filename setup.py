"""ament_python setup of the humimic package (also installs with pip into a virtualenv)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "humimic"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["humimic_core", "humimic_perception*", "humimic_retarget*", "humimic_driver*",
                                    "humimic_experiments", "humimic_bringup"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + PACKAGE + "/urdf", glob("urdf/*.urdf")),
        ("share/" + PACKAGE + "/rviz", glob("rviz/*.rviz")),
    ],
    # ROS 2 packages (rclpy, message packages) come from the ROS install or requirements-ros.txt.
    install_requires=[
        "setuptools", "numpy", "opencv-python", "mediapipe", "onnxruntime", "onnx", "dynamixel-sdk",
        "pyserial", "pyyaml", "ruamel.yaml", "rosbags", "tqdm", "matplotlib",
    ],
    # humimic-batch runs on Ray when it is installed (else --executor process / serial).
    extras_require={"batch": ["ray"]},
    zip_safe=True,
    maintainer="humimic developers",
    maintainer_email="dev@humimic.invalid",
    description="Real-time imitation of a human face on a Dynamixel-driven robot face (ROS 2).",
    license="Apache-2.0",
    tests_require=["pytest", "hypothesis"],
    entry_points={
        "console_scripts": [
            "humimic-camera = humimic_perception.camera_node:main",
            "humimic-perception = humimic_perception.perception_node:main",
            "humimic-hri-bridge = humimic_perception.hri_bridge_node:main",
            "humimic-face-twin = humimic_perception.sim.twin_node:main",
            "humimic-twin-prepare = humimic_perception.sim.neutral_face:main",
            "humimic-retarget = humimic_retarget.retarget_node:main",
            "humimic-driver = humimic_driver.driver_node:main",
            "humimic-servo-emulator = humimic_driver.sim.emulated_bus:main",
            "humimic-scan = humimic_driver.scan:main",
            "humimic-run = humimic_bringup.runner:main",
            "humimic-demo = humimic_bringup.demo:main",
            "humimic-urdf = humimic_bringup.urdf:main",
            "humimic-record = humimic_experiments.record_node:main",
            "humimic-play = humimic_experiments.play:main",
            "humimic-report = humimic_experiments.report:main",
            "humimic-dataset = humimic_experiments.dataset:main",
            "humimic-rerun = humimic_experiments.rerun:main",
            "humimic-eval = humimic_experiments.evaluate:main",
            "humimic-batch = humimic_experiments.batch:main",
            "humimic-anticipation = humimic_experiments.anticipation:main",
            "humimic-forecast-train = humimic_experiments.forecast_train:main",
            "humimic-calibrate = humimic_retarget.offline.calibrate_tool:main",
            "humimic-fit = humimic_retarget.offline.fit_tool:main",
            "humimic-babble = humimic_experiments.babble:main",
            "humimic-self-model = humimic_retarget.offline.self_model:main",
            "humimic-pose-playback = humimic_retarget.offline.pose_playback_node:main",
        ],
    },
)
