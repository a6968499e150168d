"""strict(): a CRD structural schema becomes a closed JSON Schema."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from fl_gitops.validate.strict import strict


def test_objects_with_properties_are_closed_at_every_depth():
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
    }
    assert strict(schema) == {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": False,
            }
        },
        "additionalProperties": False,
    }


def test_preserve_unknown_fields_and_maps_stay_open():
    schema = {
        "type": "object",
        "properties": {
            "free": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    out = strict(schema)
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["labels"]["additionalProperties"] == {"type": "string"}


def test_items_of_arrays_are_closed():
    schema = {"type": "array", "items": {"type": "object", "properties": {"a": {}}}}
    assert strict(schema)["items"]["additionalProperties"] is False


def test_int_or_string_accepts_both_and_nothing_else():
    out = strict(
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    )
    assert out["type"] == ["integer", "string"]
    validator = Draft202012Validator(out)
    assert validator.is_valid(3)
    assert validator.is_valid("25%")
    assert not validator.is_valid([3])


def test_nullable_adds_null_to_type_and_enum():
    out = strict({"type": "string", "enum": ["a", "b"], "nullable": True})
    assert out["type"] == ["string", "null"]
    assert out["enum"] == ["a", "b", None]


def test_embedded_resource_requires_api_version_and_kind_but_keeps_unknown_fields():
    out = strict(
        {
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    )
    validator = Draft202012Validator(out)
    assert validator.is_valid({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})
    assert not validator.is_valid({"kind": "ConfigMap"})
    assert not validator.is_valid({"apiVersion": "v1", "kind": 3})
    assert not validator.is_valid({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"})


def test_branches_of_any_of_only_check_values_and_are_not_closed():
    out = strict({"type": "object", "properties": {"a": {}}, "anyOf": [{"properties": {"a": {}}}]})
    assert "additionalProperties" not in out["anyOf"][0]
    assert out["additionalProperties"] is False


def test_strict_does_not_change_its_input():
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}}
    strict(schema)
    assert schema == {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}}


def test_set_lists_must_have_unique_items():
    out = strict({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"})
    assert out["uniqueItems"] is True
    assert not Draft202012Validator(out).is_valid(["a", "a"])
