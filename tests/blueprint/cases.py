"""Bad blueprints, each a small variation of the reference, and the error each must give.

Shared by the in-process tests (``load_blueprint``) and the CLI tests (``fl-gitops
validate`` in a subprocess). ``expected`` is everything after the file name in the error:
``:line:col: field: message``. Error text is API, so it is asserted whole.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CASES", "REFERENCE", "Case", "variant"]

# The reference blueprint without its comments, so that line numbers are plain.
REFERENCE = """\
apiVersion: fl-gitops.io/v1alpha1
kind: Experiment
metadata:
  name: digits-fedavg
  namespace: fl-system
  labels:
    team: ml-platform
spec:
  rounds: 30
  placement:
    clusterSets: [fl-silos]
    numberOfClusters: 10
    predicates:
      - requiredClusterSelector:
          labelSelector:
            matchLabels:
              fl-gitops.io/dataset: digits
          claimSelector:
            matchExpressions:
              - key: region.open-cluster-management.io
                operator: In
                values: [eu-west-1, us-east-1]
    tolerations:
      - key: gpu
        operator: Exists
  completion:
    minClusters: 8
    timeout: 30m
  strategy:
    name: fedavg
    options: {}
  client:
    image: ghcr.io/example/fl-gitops:0.1.0
    resources:
      requests: {cpu: "1", memory: 2Gi}
    model:
      builtin: mlp
      args: {hidden: 32}
    data:
      builtin: digits
      partition: {kind: dirichlet, alpha: 0.5, seed: 7}
    train:
      epochs: 5
      batchSize: 16
      optimizer: {name: sgd, lr: 0.05}
  store:
    uri: s3://fl-models/digits-fedavg
    secretRef: fl-store-credentials
  gitops:
    repo: https://git.example.com/platform/fl-config.git
    branch: main
    path: experiments/digits-fedavg
    mode: direct
"""


def variant(old: str, new: str) -> str:
    """The reference with one exact, unique snippet replaced."""
    assert REFERENCE.count(old) == 1, f"{old!r} must occur once in the reference"
    return REFERENCE.replace(old, new)


@dataclass(frozen=True)
class Case:
    """One kind of bad blueprint."""

    id: str
    text: str | bytes
    expected: str  # after the file name: ":line:col: field: message"

    @property
    def data(self) -> bytes:
        return self.text if isinstance(self.text, bytes) else self.text.encode()


DNS_LABEL = (
    "expected a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
    "alphanumeric)"
)
LABEL_VALUE = (
    "expected a label value: at most 63 characters of letters, digits, '-', '_' and '.', "
    "starting and ending alphanumeric (no spaces or newlines)"
)
REL_PATH = "expected a relative path of names separated by '/', without '.', '..' or a leading '/'"
_BOMB = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
)

CASES: list[Case] = [
    # --- YAML syntax -------------------------------------------------------------------
    Case(
        "unclosed-bracket",
        variant("clusterSets: [fl-silos]", "clusterSets: [fl-silos"),
        (
            ":12:21: not valid YAML: the '[' at line 11, column 18 is not closed: expected "
            "',' or ']', found ':'"
        ),
    ),
    Case(
        "unclosed-brace",
        variant("{name: sgd, lr: 0.05}", "{name: sgd, lr: 0.05"),
        (
            ":46:8: not valid YAML: the '{' at line 45, column 18 is not closed: expected "
            "',' or '}', found ':'"
        ),
    ),
    Case(
        "bad-indentation-dedent",
        variant("  rounds: 30", "   rounds: 30"),
        (
            ":10:3: not valid YAML: bad indentation: this line does not line up with the "
            "keys above it"
        ),
    ),
    Case(
        "bad-indentation-indent",
        variant("    timeout: 30m", "      timeout: 30m"),
        (
            ":28:14: not valid YAML: unexpected ':'; quote a value that contains ': ', or "
            "fix this line's indentation"
        ),
    ),
    Case(
        "tab-indentation",
        variant("  rounds: 30", "\trounds: 30"),
        (":9:1: not valid YAML: a tab character; YAML indentation and separation must use spaces"),
    ),
    Case(
        "tab-after-colon",
        variant("  rounds: 30", "  rounds:\t30"),
        (":9:10: not valid YAML: a tab character; YAML indentation and separation must use spaces"),
    ),
    Case(
        "unclosed-quote",
        variant("team: ml-platform", 'team: "ml-platform'),
        (
            ":35:34: not valid YAML: unexpected ':'; quote a value that contains ': ', or "
            "fix this line's indentation; the quoted string at line 7, column 11 runs on "
            "to line 35: is its closing quote missing?"
        ),
    ),
    Case(
        "missing-colon",
        variant("  rounds: 30", "  rounds 30"),
        (
            ":10:12: not valid YAML: unexpected ':'; quote a value that contains ': ', or "
            "fix this line's indentation; is a ':' missing on line 9?"
        ),
    ),
    Case(
        "reserved-character",
        variant("name: fedavg", "name: @fedavg"),
        (":30:11: not valid YAML: a value cannot start with '@'; quote the value"),
    ),
    Case(
        "duplicate-key-top",
        REFERENCE + "kind: Experiment\n",
        (
            ":54:1: kind: duplicate key 'kind' (first at line 2, column 1); each key may "
            "appear once in a mapping"
        ),
    ),
    Case(
        "duplicate-key-nested",
        variant("    timeout: 30m", "    timeout: 30m\n    timeout: 1h"),
        (
            ":29:5: spec.completion.timeout: duplicate key 'timeout' (first at line 28, "
            "column 5); each key may appear once in a mapping"
        ),
    ),
    Case(
        "duplicate-key-in-flow-mapping",
        variant("{name: sgd, lr: 0.05}", "{name: sgd, lr: 0.05, lr: 0.1}"),
        (
            ":45:40: spec.client.train.optimizer.lr: duplicate key 'lr' (first at line 45, "
            "column 30); each key may appear once in a mapping"
        ),
    ),
    Case(
        "undefined-alias",
        variant("rounds: 30", "rounds: *rounds"),
        (":9:11: not valid YAML: alias *rounds refers to no anchor &rounds defined before it"),
    ),
    Case(
        "alias-bomb",
        REFERENCE + _BOMB,
        (
            ":54:7: lol2[5][4]: more than 64 alias references; expected a blueprint "
            "without alias bombs"
        ),
    ),
    Case(
        "deep-nesting",
        variant("  store:", "  evaluation:\n    server: " + "[" * 100 + "]" * 100 + "\n  store:"),
        (
            ":47:74: spec.evaluation.server[0][0][0][0][0]...: nesting deeper than 64 "
            "levels; expected a blueprint"
        ),
    ),
    Case(
        "two-documents",
        REFERENCE + "---\n" + REFERENCE,
        (
            ":54:1: a second YAML document starts here (the file holds 2); expected "
            "exactly one Experiment per file"
        ),
    ),
    Case(
        "unsupported-yaml-version",
        "%YAML 2.0\n---\n" + REFERENCE,
        (":1:1: not valid YAML: incompatible YAML document (version 1.* is required)"),
    ),
    # --- what the file is ---------------------------------------------------------------
    Case(
        "empty-file",
        "",
        (":1:1: the file is empty; expected an Experiment (apiVersion: fl-gitops.io/v1alpha1)"),
    ),
    Case(
        "blank-lines-only",
        "\n   \n\n",
        (":1:1: the file is empty; expected an Experiment (apiVersion: fl-gitops.io/v1alpha1)"),
    ),
    Case(
        "comments-only",
        "# an experiment, one day\n# not yet\n",
        ":1:1: the file holds only comments; expected an Experiment",
    ),
    Case(
        "list-not-mapping",
        "- apiVersion: fl-gitops.io/v1alpha1\n- kind: Experiment\n",
        ":1:1: the document is a list; expected a mapping (an Experiment)",
    ),
    Case(
        "scalar-not-mapping",
        "Experiment\n",
        (":1:1: the document is a string ('Experiment'); expected a mapping (an Experiment)"),
    ),
    Case(
        "nul-byte",
        variant("rounds: 30", "rounds: 3\x000"),
        ":9:12: binary data (a NUL byte); expected YAML text",
    ),
    Case(
        "random-bytes",
        random.Random(7).randbytes(4096),
        ":1:71: binary data (a NUL byte); expected YAML text",
    ),
    Case(
        "not-utf8",
        variant("team: ml-platform", "team: équipe").encode("latin-1"),
        ":7:11: not UTF-8 text (byte 0xe9); expected YAML in UTF-8",
    ),
    Case("utf16", REFERENCE.encode("utf-16"), ":1: UTF-16 text; expected YAML in UTF-8"),
    Case(
        "control-character",
        variant("team: ml-platform", "team: ml\x07platform"),
        ":7:13: control character U+0007; expected printable YAML text",
    ),
    Case(
        "five-megabytes",
        REFERENCE + "# " + "x" * (5 * 1024 * 1024) + "\n",
        (": the file is 5244145 bytes; a blueprint may be at most 1048576 bytes"),
    ),
    Case(
        "huge-integer",
        variant("rounds: 30", "rounds: 1" + "0" * 5000),
        (":9:11: spec.rounds: a number of 5001 characters; expected at most 100"),
    ),
    Case(
        "not-a-number",
        variant("lr: 0.05", "lr: .nan"),
        (":45:34: spec.client.train.optimizer.lr: expected a finite number, got nan"),
    ),
    Case(
        "integer-key",
        variant("  rounds: 30", "  rounds: 30\n  1: one"),
        (':10:3: spec: key 1 is an integer; expected a string key (quote it: "1")'),
    ),
    Case(
        "list-key",
        REFERENCE + "? [a, b]\n: 1\n",
        ":54:3: key ['a', 'b'] is a list; expected a string key",
    ),
    # --- wrong types at several depths --------------------------------------------------
    Case(
        "rounds-word",
        variant("rounds: 30", "rounds: ten"),
        ":9:11: spec.rounds: expected an integer, got string 'ten'",
    ),
    Case(
        "epochs-float",
        variant("epochs: 5", "epochs: 1.5"),
        ":43:15: spec.client.train.epochs: expected an integer, got 1.5",
    ),
    Case(
        "lr-string",
        variant("lr: 0.05", 'lr: "x"'),
        (":45:34: spec.client.train.optimizer.lr: expected a number, got string 'x'"),
    ),
    Case(
        "labels-list",
        variant("    team: ml-platform", "    - team"),
        ":7:5: metadata.labels: expected a mapping, got a list",
    ),
    Case(
        "metadata-null",
        variant(
            "  name: digits-fedavg\n  namespace: fl-system\n  labels:\n    team: ml-platform\n", ""
        ),
        ":3:1: metadata: expected a mapping, got null",
    ),
    Case(
        "name-null",
        variant("name: digits-fedavg", "name:"),
        ":4:3: metadata.name: expected a string, got null",
    ),
    Case(
        "placement-count-string",
        variant("numberOfClusters: 10", "numberOfClusters: ten"),
        (":12:23: spec.placement.numberOfClusters: expected an integer, got string 'ten'"),
    ),
    # --- unknown fields at every depth --------------------------------------------------
    Case(
        "unknown-top",
        REFERENCE + "labels: {}\n",
        (
            ":54:1: labels: unknown field 'labels'; expected one of: apiVersion, kind, "
            "metadata, spec"
        ),
    ),
    Case(
        "unknown-metadata",
        variant("  namespace: fl-system", "  namespace: fl-system\n  nmespace: x"),
        (":6:3: metadata.nmespace: unknown field 'nmespace'; did you mean 'namespace'?"),
    ),
    Case(
        "unknown-spec-case",
        variant("  rounds: 30", "  Rounds: 30"),
        ":9:3: spec.Rounds: unknown field 'Rounds'; did you mean 'rounds'?",
    ),
    Case(
        "unknown-optimizer",
        variant("lr: 0.05}", "lr: 0.05, momentom: 0.9}"),
        (
            ":45:40: spec.client.train.optimizer.momentom: unknown field 'momentom'; did "
            "you mean 'momentum'?"
        ),
    ),
    Case(
        "unknown-cluster-selector",
        variant("          labelSelector:", "          labelSelectors:"),
        (
            ":15:11: spec.placement.predicates[0].requiredClusterSelector.labelSelectors: "
            "unknown field 'labelSelectors'; did you mean 'labelSelector'?"
        ),
    ),
    Case(
        "unknown-placement",
        variant("numberOfClusters: 10", "numberOfCluster: 10"),
        (
            ":12:5: spec.placement.numberOfCluster: unknown field 'numberOfCluster'; did "
            "you mean 'numberOfClusters'?"
        ),
    ),
    Case(
        "unknown-resource",
        variant('{cpu: "1", memory: 2Gi}', '{cpu: "1", memory: 2Gi, gpu: 1}'),
        (
            ":35:41: spec.client.resources.requests.gpu: bad key 'gpu'; expected one of "
            "'cpu', 'memory', 'ephemeral-storage'; did you mean 'cpu'?"
        ),
    ),
    Case(
        "newline-in-key",
        variant("  rounds: 30", '  rounds: 30\n  "error: x.yaml:1:1\\nkind": 1'),
        (
            ":10:3: spec.'error: x.yaml:1:1\\nkind': unknown field 'error: x.yaml:1:1\\nkind'; "
            "expected one of: aggregation, argocd, client, completion, evaluation, gitops, "
            "influence, placement, reconcile, rounds, store, strategy"
        ),
    ),
    # --- missing fields -----------------------------------------------------------------
    Case(
        "missing-rounds",
        variant("  rounds: 30\n", ""),
        ":8:1: spec: missing required field 'rounds'",
    ),
    Case(
        "missing-name",
        variant("  name: digits-fedavg\n", ""),
        ":3:1: metadata: missing required field 'name'",
    ),
    Case(
        "missing-api-version",
        variant("apiVersion: fl-gitops.io/v1alpha1\n", ""),
        ":1:1: missing required field 'apiVersion'",
    ),
    Case(
        "model-neither",
        variant("      builtin: mlp\n", ""),
        (":37:7: spec.client.model: set exactly one of 'builtin' or 'entrypoint'; found neither"),
    ),
    Case(
        "model-both",
        variant("      builtin: mlp", "      builtin: mlp\n      entrypoint: team.models:build"),
        (":37:7: spec.client.model: set exactly one of 'builtin' or 'entrypoint'; found both"),
    ),
    # --- names, paths, labels -----------------------------------------------------------
    Case(
        "name-uppercase",
        variant("name: digits-fedavg", "name: Digits-FedAvg"),
        (
            ":4:9: metadata.name: expected a DNS-1123 label (lowercase letters, digits and "
            "'-', starting and ending alphanumeric), got string 'Digits-FedAvg'"
        ),
    ),
    Case(
        "name-underscore",
        variant("name: digits-fedavg", "name: digits_fedavg"),
        (
            ":4:9: metadata.name: expected a DNS-1123 label (lowercase letters, digits and "
            "'-', starting and ending alphanumeric), got string 'digits_fedavg'"
        ),
    ),
    Case(
        "name-too-long",
        variant("name: digits-fedavg", "name: " + "d" * 41),
        ":4:9: metadata.name: expected at most 40 characters, got 41",
    ),
    Case(
        "name-leading-dash",
        variant("name: digits-fedavg", "name: -digits"),
        (
            ":4:9: metadata.name: expected a DNS-1123 label (lowercase letters, digits and "
            "'-', starting and ending alphanumeric), got string '-digits'"
        ),
    ),
    Case(
        "path-dotdot",
        variant("path: experiments/digits-fedavg", "path: experiments/../../etc"),
        (
            ":52:11: spec.gitops.path: expected a relative path of names separated by '/', "
            "without '.', '..' or a leading '/', got string 'experiments/../../etc'"
        ),
    ),
    Case(
        "path-absolute",
        variant("path: experiments/digits-fedavg", "path: /etc/fl"),
        (
            ":52:11: spec.gitops.path: expected a relative path of names separated by '/', "
            "without '.', '..' or a leading '/', got string '/etc/fl'"
        ),
    ),
    Case(
        "label-value-newline",
        variant("team: ml-platform", 'team: "ml-platform\\nevil: 1"'),
        (
            ":7:11: metadata.labels.team: expected a label value: at most 63 characters of "
            "letters, digits, '-', '_' and '.', starting and ending alphanumeric (no "
            "spaces or newlines), got string 'ml-platform\\nevil: 1'"
        ),
    ),
    Case(
        "label-value-trailing-newline",
        variant("team: ml-platform", "team: |\n      ml-platform"),
        (
            ":7:11: metadata.labels.team: expected a label value: at most 63 characters of "
            "letters, digits, '-', '_' and '.', starting and ending alphanumeric (no "
            "spaces or newlines), got string 'ml-platform\\n'"
        ),
    ),
    Case(
        "label-key-space",
        variant("    team: ml-platform", '    "my team": ml-platform'),
        (
            ":7:5: metadata.labels.my team: bad key 'my team'; expected a label key such "
            "as 'team' or 'example.com/team'"
        ),
    ),
    # --- enums, ranges, formats ---------------------------------------------------------
    Case(
        "api-version",
        variant("fl-gitops.io/v1alpha1", "fl-gitops.io/v1"),
        (":1:13: apiVersion: expected 'fl-gitops.io/v1alpha1', got string 'fl-gitops.io/v1'"),
    ),
    Case(
        "kind",
        variant("kind: Experiment", "kind: Experimnt"),
        ":2:7: kind: expected 'Experiment', got string 'Experimnt'",
    ),
    Case(
        "strategy-name",
        variant("name: fedavg", "name: fedavgg"),
        (
            ":30:11: spec.strategy.name: expected one of 'fedavg', 'fedavgm', 'fedprox', "
            "'fedadam', 'fedyogi', 'fedadagrad', 'fedmedian', 'fedtrimmedavg', 'krum', "
            "'multikrum', got string 'fedavgg'; did you mean 'fedavg'?"
        ),
    ),
    Case(
        "gitops-mode",
        variant("mode: direct", "mode: push"),
        (":53:11: spec.gitops.mode: expected one of 'direct', 'pull-request', got string 'push'"),
    ),
    Case(
        "partition-kind",
        variant("kind: dirichlet", "kind: dirichlett"),
        (
            ":41:25: spec.client.data.partition.kind: expected one of 'iid', 'dirichlet', "
            "'shards', got string 'dirichlett'; did you mean 'dirichlet'?"
        ),
    ),
    Case(
        "optimizer-name",
        variant("name: sgd", "name: rmsprop"),
        (
            ":45:25: spec.client.train.optimizer.name: expected one of 'sgd', 'adam', got "
            "string 'rmsprop'"
        ),
    ),
    Case(
        "rounds-zero",
        variant("rounds: 30", "rounds: 0"),
        ":9:11: spec.rounds: expected an integer >= 1, got 0",
    ),
    Case(
        "rounds-too-many",
        variant("rounds: 30", "rounds: 1000000"),
        ":9:11: spec.rounds: expected an integer <= 100000, got 1000000",
    ),
    Case(
        "lr-negative",
        variant("lr: 0.05", "lr: -0.1"),
        (":45:34: spec.client.train.optimizer.lr: expected a number > 0, got -0.1"),
    ),
    Case(
        "timeout-words",
        variant("timeout: 30m", "timeout: 30 minutes"),
        (
            ":28:14: spec.completion.timeout: expected a duration such as 90s, 30m or "
            "1h30m, got string '30 minutes'"
        ),
    ),
    Case(
        "cpu-quantity",
        variant('cpu: "1"', 'cpu: "one"'),
        (
            ":35:23: spec.client.resources.requests.cpu: expected a Kubernetes quantity "
            "such as 500m, 1, 2Gi, got string 'one'"
        ),
    ),
    # --- across fields ------------------------------------------------------------------
    Case(
        "dirichlet-without-alpha",
        variant("alpha: 0.5, ", ""),
        (":41:18: spec.client.data.partition: partition kind 'dirichlet' needs 'alpha'"),
    ),
    Case(
        "alpha-with-iid",
        variant("kind: dirichlet", "kind: iid"),
        (
            ":41:37: spec.client.data.partition.alpha: 'alpha' does not apply to partition "
            "kind 'iid'"
        ),
    ),
    Case(
        "quorum-above-count",
        variant("minClusters: 8", "minClusters: 11"),
        (
            ":27:18: spec.completion.minClusters: minClusters is 11 but "
            "placement.numberOfClusters is 10; expected minClusters <= numberOfClusters"
        ),
    ),
    Case(
        "strategy-unknown-option",
        variant("options: {}", "options: {mu: 0.1}"),
        (
            ":31:15: spec.strategy.options.mu: unknown option 'mu'; strategy 'fedavg' "
            "takes no options"
        ),
    ),
    Case(
        "strategy-option-range",
        variant("name: fedavg\n    options: {}", "name: fedprox\n    options: {mu: -1}"),
        ":31:19: spec.strategy.options.mu: expected a number >= 0, got -1",
    ),
    Case(
        "krum-quorum-too-small",
        variant("name: fedavg\n    options: {}", "name: krum\n    options: {f: 3}"),
        (
            ":27:18: spec.completion.minClusters: krum with f=3 needs at least 9 updates "
            "(n >= 2f + 3) but minClusters is 8; raise minClusters or lower "
            "strategy.options.f"
        ),
    ),
    Case(
        "dp-around-krum",
        variant(
            "name: fedavg\n    options: {}",
            "name: krum\n    options: {}\n    dp: {clipNorm: 1.0}",
        ),
        (
            ":32:9: spec.strategy.dp: strategy 'krum' cannot run under dp: its noise is "
            "calibrated for a mean; expected one of fedavg, fedavgm, fedprox, fedadam, "
            "fedyogi, fedadagrad, or no dp block"
        ),
    ),
    Case(
        "executor-without-a-service-account-name",
        variant(
            "      optimizer: {name: sgd, lr: 0.05}\n",
            "      optimizer: {name: sgd, lr: 0.05}\n    executor:\n"
            "      serviceAccount: {namespace: open-cluster-management-agent}\n",
        ),
        ":47:7: spec.client.executor.serviceAccount: missing required field 'name'",
    ),
    Case(
        "executor-service-account-not-a-name",
        variant(
            "      optimizer: {name: sgd, lr: 0.05}\n",
            "      optimizer: {name: sgd, lr: 0.05}\n    executor:\n"
            "      serviceAccount: {namespace: agents, name: Executor_SA}\n",
        ),
        (
            ":47:49: spec.client.executor.serviceAccount.name: expected a DNS-1123 subdomain "
            "(lowercase letters, digits, '-' and '.', each dot-separated part starting and "
            "ending alphanumeric), got string 'Executor_SA'"
        ),
    ),
    Case(
        "feedback-scrape-type-in-lower-case",
        variant(
            "      optimizer: {name: sgd, lr: 0.05}\n",
            "      optimizer: {name: sgd, lr: 0.05}\n    feedbackScrapeType: watch\n",
        ),
        (
            ":46:25: spec.client.feedbackScrapeType: expected one of 'Poll', 'Watch', got "
            "string 'watch'; did you mean 'Watch'?"
        ),
    ),
    Case(
        "pull-request-settings-in-direct-mode",
        variant("    mode: direct", "    mode: direct\n    pullRequest: {forge: github}"),
        (":54:18: spec.gitops.pullRequest: pullRequest settings need mode: pull-request"),
    ),
]
