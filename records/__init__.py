"""The learning record and the person identifiers every flow shares."""

from creditbridge.records.id_number import IdNumberError, mask_id_number, mask_id_numbers, validate_id_number
from creditbridge.records.learning_record import LearningRecord, RecordKind

__all__ = ["IdNumberError", "LearningRecord", "RecordKind", "mask_id_number", "mask_id_numbers", "validate_id_number"]
