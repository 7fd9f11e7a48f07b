# pullvault — every entry point takes INVENTORY=path and ARGS="…" (e.g. ARGS=--dry-run).
INVENTORY ?= inventory.json
ARGS ?=
CLI = node_modules/.bin/tsx provision/cli.ts

.PHONY: help deps validate provision-aws provision-server provision-pi write-sd write-usbkey install-runtime recovery-kit demo test test-unit typecheck lint-deps build bench bench-pull bench-offsite bench-churn bench-files venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

deps: node_modules ## install npm dependencies

validate: node_modules ## check the inventory: make validate [INVENTORY=path]
	@$(CLI) validate --inventory $(INVENTORY) $(ARGS)

provision-aws: node_modules ## bucket, write-once policy, lifecycle, the Pi's IAM user
	@$(CLI) provision-aws --inventory $(INVENTORY) $(ARGS)

provision-server: node_modules ## backup user, groups, dump rights, pinned key on each server
	@$(CLI) provision-server --inventory $(INVENTORY) $(ARGS)

provision-pi: node_modules ## encrypted SD image + USB key image (root)
	@$(CLI) provision-pi --inventory $(INVENTORY) $(ARGS)

write-sd: node_modules ## write the SD image: make write-sd DEVICE=/dev/sdX
	@$(CLI) write-sd --inventory $(INVENTORY) --device "$(DEVICE)" $(ARGS)

write-usbkey: node_modules ## write the USB key image: make write-usbkey DEVICE=/dev/sdX
	@$(CLI) write-usbkey --inventory $(INVENTORY) --device "$(DEVICE)" $(ARGS)

install-runtime: node_modules ## install/update the runtime on the Pi over SSH
	@$(CLI) install-runtime --inventory $(INVENTORY) $(ARGS)

recovery-kit: node_modules ## the page to print: bucket, keys (paperkey + QR), LUKS passphrase, by-hand restore → state/recovery-kit/
	@$(CLI) recovery-kit --inventory $(INVENTORY) $(ARGS)

demo: ## the whole system on this machine in disposable lab hosts (root)
	@bash scripts/install-deps.sh
	@$(MAKE) --no-print-directory node_modules venv
	@$(CLI) demo $(ARGS)

build: node_modules ## bundle the Pi runtime into dist/pullvault.mjs (Node 18+)
	@node_modules/.bin/tsx provision/build-runtime.ts

venv: .venv/.installed ## the Python venv with the local AWS endpoint (moto) for tests and the demo
.venv/.installed: test/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r test/requirements.txt
	@touch $@

typecheck: node_modules ## TypeScript strict check
	@node_modules/.bin/tsc --noEmit -p .

lint-deps: node_modules ## the layering rules (.dependency-cruiser.cjs): sides meet only in contract/ and lib/, no cycles, pure plans
	@node_modules/.bin/depcruise --config .dependency-cruiser.cjs contract lib provision runtime test bench

test: node_modules venv ## all tests (lab suites need root)
	@node_modules/.bin/tsc --noEmit -p .
	@$(MAKE) --no-print-directory lint-deps
	@node_modules/.bin/vitest run

test-unit: node_modules ## only the pure tests
	@node_modules/.bin/vitest run test/unit

bench: bench-pull bench-offsite bench-churn bench-files ## the benchmarks (root, lab); figures in bench/README.md, bench/OFFSITE.md

bench-pull: node_modules ## pull vs bare rsync over the same SSH transport: make bench-pull ARGS="--size-mb 1024 --rounds 3"
	@node_modules/.bin/tsx bench/pull.ts $(ARGS)

bench-offsite: node_modules ## archive+encrypt+store vs tar|zstd|gpg, restore RSS, restic/duplicity for context
	@node_modules/.bin/tsx bench/offsite.ts $(ARGS)

bench-files: node_modules ## file-count sweep: peak RSS and time of pull, offsite full/incremental, restore vs restic (ARGS="--points 250000,1000000,2000000")
	@node_modules/.bin/tsx bench/files-sweep.ts $(ARGS)

bench-churn: node_modules ## daily churn, 6 days, vs restic, borg, duplicity: bytes per day, restore of the last day (ARGS="--scale 1")
	@node_modules/.bin/tsx bench/churn.ts $(ARGS)
