# The two set-up commands: `make demo` (train, convert, verify, benchmark on the embedded data)
# and `make test` (the unit suite). Both create .venv and install what is missing first.
.PHONY: demo test install full-data benchmark clean

demo:
	scripts/bootstrap.sh tflbnn demo

test:
	scripts/bootstrap.sh pytest -q

install:
	scripts/bootstrap.sh

# The full 60k/10k Fashion-MNIST (Debian package, MIT), used by benchmarks/ and when present.
full-data:
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)

benchmark: full-data
	scripts/bootstrap.sh python benchmarks/reactnet_fashion_mnist.py

clean:
	rm -rf runs .pytest_cache
