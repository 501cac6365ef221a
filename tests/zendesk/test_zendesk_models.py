"""Recorded Zendesk payloads parse into the typed models, with the values the connector reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from zendesk_helpers import export_body, fixture_bytes

from connector.helpdesks.zendesk import (
    ExportPage,
    JobStatus,
    MetricSet,
    Organization,
    OrganizationField,
    Ticket,
    TicketField,
    TicketPage,
    TicketUpdate,
)


def test_recorded_last_cursor_page_parses_with_its_ticket() -> None:
    page = ExportPage.model_validate_json(fixture_bytes("incremental_cursor_last_page.json"))

    assert page.end_of_stream is True
    assert page.after_cursor == "xxxx"
    (ticket,) = page.tickets
    assert ticket.id == 10046
    assert ticket.created_at == datetime(2015, 7, 17, 9, 44, 45, tzinfo=UTC)
    assert ticket.generated_timestamp == 1437638600
    assert (ticket.status, ticket.priority) == ("closed", "urgent")
    assert ticket.organization_id == 260110007
    assert ticket.tags == ("idcf", "problem-report")
    assert len(ticket.custom_fields) == 43
    assert ticket.field(80429327) is None
    assert page.organizations == ()


def test_recorded_page_with_more_to_come_says_so() -> None:
    page = ExportPage.model_validate_json(fixture_bytes("incremental_cursor_page_more.json"))

    assert page.end_of_stream is False
    assert page.after_cursor == "xxxx"


def test_checkbox_field_keeps_its_boolean() -> None:
    page = ExportPage.model_validate_json(fixture_bytes("incremental_cursor_last_page.json"))
    ticket = page.tickets[0]

    checkboxes = [f for f in ticket.custom_fields if isinstance(f.value, bool)]
    assert len(checkboxes) == 1
    assert ticket.field(checkboxes[0].id) is False


def test_text_and_multiselect_values_read_by_field_id() -> None:
    body = json.loads(fixture_bytes("ticket_with_custom_fields.json"))
    ticket = Ticket.model_validate(body["ticket"])

    assert ticket.field(360005657120) == "Custom field value for testing"
    assert ticket.field(360005657121) == ["list", "of", "values"]
    assert ticket.field(1) is None


def test_ticket_without_priority_parses() -> None:
    body = json.loads(fixture_bytes("ticket_show_email_via.json"))
    ticket = Ticket.model_validate(body["ticket"])

    assert ticket.priority is None
    assert ticket.status == "solved"
    assert ticket.custom_fields == ()


def test_metric_sets_sideload_of_recorded_export() -> None:
    page = TicketPage.model_validate_json(fixture_bytes("incremental_export_with_metric_sets.json"))

    assert len(page.tickets) == 3
    for ticket in page.tickets:
        metric_set = page.metric_set_for(ticket)
        assert metric_set is not None
        assert metric_set.ticket_id == ticket.id


def test_organizations_sideload_of_recorded_export() -> None:
    page = TicketPage.model_validate_json(
        fixture_bytes("incremental_time_based_with_organizations.json")
    )

    with_org = [t for t in page.tickets if page.organization_for(t) is not None]
    assert with_org
    organization = page.organization_for(with_org[0])
    assert organization is not None
    assert organization.organization_fields == {}


def test_first_reply_is_creation_plus_calendar_minutes() -> None:
    body = json.loads(fixture_bytes("ticket_metric_with_reply_time.json"))
    metric_set = MetricSet.model_validate(body["ticket_metric"])
    created = datetime(2012, 9, 6, 20, 17, 10, tzinfo=UTC)

    assert metric_set.first_reply_at(created) == datetime(2012, 9, 6, 20, 19, 10, tzinfo=UTC)
    assert metric_set.solved_at is None


def test_no_first_reply_before_an_agent_replied() -> None:
    metric_set = MetricSet.model_validate(
        {"ticket_id": 1, "reply_time_in_minutes": {"calendar": None, "business": None}}
    )

    assert metric_set.first_reply_at(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert MetricSet(ticket_id=2).first_reply_at(datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_sideloads_are_matched_to_their_ticket() -> None:
    page = ExportPage.model_validate(export_body([1, 2], after_cursor="c", end_of_stream=False))
    orphan = page.tickets[0].model_copy(update={"id": 3, "organization_id": None})

    organization = page.organization_for(page.tickets[0])
    assert organization is not None
    assert organization.organization_fields["sla_contract"] == "photoprism"
    assert page.metric_set_for(page.tickets[1]) is not None
    assert page.organization_for(orphan) is None
    assert page.metric_set_for(orphan) is None


def test_naive_timestamps_are_refused() -> None:
    body = export_body([1], after_cursor=None, end_of_stream=True)["tickets"][0]
    body["created_at"] = "2026-03-02T08:15:00"

    with pytest.raises(ValidationError):
        Ticket.model_validate(body)


def test_ticket_fields_list_with_system_and_custom_options() -> None:
    body = json.loads(fixture_bytes("ticket_fields_list.json"))
    fields = {f.type: f for f in map(TicketField.model_validate, body["ticket_fields"])}

    assert len(fields) == 15
    assert [o.value for o in fields["status"].options] == ["open", "pending", "solved"]
    assert [o.value for o in fields["tagger"].options] == ["opt1", "opt2"]
    assert fields["date"].options == ()


def test_organization_fields_carry_their_key() -> None:
    body = json.loads(fixture_bytes("organization_fields_list.json"))
    keys = [OrganizationField.model_validate(f).key for f in body["organization_fields"]]

    assert keys == ["test_key", "test_external_id"]


def test_organization_without_fields_key() -> None:
    body = json.loads(fixture_bytes("organizations_list.json"))
    organizations = [Organization.model_validate(o) for o in body["organizations"]]

    assert [o.name for o in organizations] == ["Rebel Alliance", "Imperial Senate"]
    assert organizations[0].organization_fields == {}
    assert organizations[0].tags == ("test",)


def test_update_response_gives_the_new_updated_at() -> None:
    body = json.loads(fixture_bytes("ticket_update_put_response_with_audit.json"))
    ticket = Ticket.model_validate(body["ticket"])

    assert ticket.id == 8868
    assert ticket.updated_at == datetime(2015, 12, 30, 1, 45, 37, tzinfo=UTC)


def test_job_results_split_into_successes_and_failures() -> None:
    job = JobStatus.model_validate(
        {
            "id": "8b726e606741012ffc2d782bcb7848fe",
            "status": "completed",
            "total": 2,
            "progress": 2,
            "results": [
                {"id": 1, "action": "update", "success": True, "status": "Updated"},
                {
                    "id": 2,
                    "action": "update",
                    "success": False,
                    "error": "UpdateConflict",
                    "details": "The ticket was updated since you read it",
                },
            ],
        }
    )

    assert job.finished
    assert [r.id for r in job.succeeded] == [1]
    assert [(r.id, r.error) for r in job.failed] == [(2, "UpdateConflict")]


def test_queued_job_has_no_results_yet() -> None:
    job = JobStatus.model_validate({"id": "j", "status": "queued", "results": None})

    assert not job.finished
    assert job.results == ()


def test_update_emptiness() -> None:
    assert TicketUpdate().is_empty
    assert TicketUpdate(note="").is_empty
    assert not TicketUpdate(custom_fields={9100101: None}).is_empty
    assert not TicketUpdate(remove_tags=("sla_at_risk",)).is_empty
    assert not TicketUpdate(priority="urgent").is_empty
