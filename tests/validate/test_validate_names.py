"""Kubernetes' name, label and key rules, as fl_gitops.validate.names states them."""

from __future__ import annotations

import pytest

from fl_gitops.validate.names import (
    check_annotation_key,
    check_configmap_key,
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_label_key,
    check_label_value,
)


@pytest.mark.parametrize("value", ["a", "cluster-007", "0abc", "a" * 63])
def test_dns1123_label_accepts_lower_case_names_up_to_63(value):
    assert check_dns1123_label(value) is None


def test_dns1123_label_rejects_upper_case_and_names_it():
    assert check_dns1123_label("Cluster") == (
        "\"Cluster\" is not a DNS-1123 label: use lower-case letters, digits and '-', "
        "starting and ending with a letter or digit"
    )


@pytest.mark.parametrize("value", ["", "-a", "a-", "a.b", "a_b", "a\n", "a" * 64])
def test_dns1123_label_rejects_bad_shapes(value):
    assert check_dns1123_label(value) is not None


def test_dns1123_label_reports_length_before_shape():
    assert check_dns1123_label("a" * 64) == (
        f'"{"a" * 64}" is 64 characters long; at most 63 are allowed'
    )


@pytest.mark.parametrize("value", ["a", "fl-digits.r3", "a.b.c", "x" * 253])
def test_dns1123_subdomain_accepts_dotted_labels(value):
    assert check_dns1123_subdomain(value) is None


@pytest.mark.parametrize("value", ["", "a..b", ".a", "a.", "A.b", "a_b", "a\n", "x" * 254, 3])
def test_dns1123_subdomain_rejects_bad_shapes(value):
    assert check_dns1123_subdomain(value) is not None


def test_a_non_string_name_is_reported_as_such():
    assert check_dns1123_subdomain(3) == "3 is not a string"


def test_dns1035_label_must_start_with_a_letter():
    assert check_dns1035_label("svc-1") is None
    assert check_dns1035_label("1svc") is not None


@pytest.mark.parametrize(
    "key",
    ["app", "fl-gitops.io/round", "app.kubernetes.io/managed-by", "A_b.c-D", "a/" + "b" * 63],
)
def test_label_key_accepts_qualified_names(key):
    assert check_label_key(key) is None


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("/x", "\"/x\" is not a valid label key: the prefix before '/' is empty"),
        ("a/", '"a/" is not a valid label key: the name part is empty'),
        ("a/b/c", "\"a/b/c\" is not a valid label key: it has more than one '/'"),
        (
            "x/" + "b" * 64,
            f'"x/{"b" * 64}" is not a valid label key: the name part is 64 characters long; '
            "at most 63 are allowed",
        ),
        (
            "Fl.io/x",
            '"Fl.io/x" is not a valid label key: its prefix "Fl.io" is not a DNS-1123 '
            "subdomain: use lower-case letters, digits, '-' and '.', each dot-separated part "
            "starting and ending with a letter or digit",
        ),
        (
            "-x",
            '"-x" is not a valid label key: the name part must use letters, digits, '
            "'-', '_' and '.', starting and ending with a letter or digit",
        ),
    ],
)
def test_label_key_rejects_bad_keys_with_the_reason(key, message):
    assert check_label_key(key) == message


def test_annotation_key_prefix_is_case_insensitive_but_label_key_prefix_is_not():
    assert check_annotation_key("Argocd.Argoproj.io/sync-options") is None
    assert check_label_key("Argocd.Argoproj.io/sync-options") is not None


@pytest.mark.parametrize("value", ["", "3", "digits-fedavg", "A.b_c-1", "v" * 63])
def test_label_value_accepts_short_alphanumeric_values(value):
    assert check_label_value(value) is None


def test_label_value_with_a_newline_is_rejected_even_at_the_end():
    assert check_label_value("3\n") == (
        "\"3\\n\" is not a valid label value: use letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit"
    )


@pytest.mark.parametrize("value", ["a b", "-a", "a-", "a/b", "v" * 64, 3])
def test_label_value_rejects_bad_values(value):
    assert check_label_value(value) is not None


@pytest.mark.parametrize(
    ("key", "ok"), [("round.json", True), ("a_b-C", True), (".", False), ("a/b", False)]
)
def test_configmap_key_allows_file_name_characters_only(key, ok):
    assert (check_configmap_key(key) is None) is ok
