# The two set-up commands: `make demo` (train, convert, verify, benchmark on the embedded data)
# and `make test` (the Python unit suite, then the Android demo's offline checks). Both create
# .venv and install what is missing first.
.PHONY: demo test test-python test-android app-model install full-data benchmark \
	benchmark-lowbit benchmark-bnn benchmark-grouped-conv clean

demo:
	scripts/bootstrap.sh tflbnn demo

test: test-python test-android

test-python:
	scripts/bootstrap.sh pytest -q

# JUnit tests of the app logic with golden parity against Python, and the offline APK build.
test-android:
	android_demo/tools/check.sh

# Make the model `make demo` wrote the Android demo app's bundled model.
app-model:
	scripts/bootstrap.sh tflbnn app-model runs/demo/model.tflite

install:
	scripts/bootstrap.sh

# The full 60k/10k Fashion-MNIST (Debian package, MIT), used by benchmarks/ and when present.
full-data:
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)

benchmark: full-data
	scripts/bootstrap.sh python benchmarks/reactnet_fashion_mnist.py

benchmark-lowbit: full-data
	scripts/bootstrap.sh python benchmarks/lowbit_fashion_mnist.py

benchmark-bnn: full-data
	scripts/bootstrap.sh python benchmarks/bnn_fashion_mnist.py

benchmark-grouped-conv:
	scripts/bootstrap.sh python benchmarks/grouped_conv_speed.py

clean:
	rm -rf runs .pytest_cache build android_demo/build
