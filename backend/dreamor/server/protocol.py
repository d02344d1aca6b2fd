"""The backend <-> add-on wire in one import (DESIGN.md; docs/protocol.md has it all), split as Jupyter's is:

- ``envelope.py``: a message as HMAC-signed multipart ZeroMQ frames, :class:`Session` (holds the key),
  :class:`ProtocolError` and its codes;
- ``messages.py``: the message types, the submit's arrays and options, the result's arrays, the checks
  both sides run (:func:`check_submit`);
- ``connection.py``: the connection file (where the backend listens, its key), written and read.

Standard library and numpy only: the Blender add-on ships verbatim copies of these files (and ``client.py``)
as ``dreamor_wire/`` (``scripts/build_addon.py``), so ``protocol.X`` names one thing on both sides.
"""
from __future__ import annotations

from .connection import (  # noqa: F401
    ConnectionInfo,
    default_connection_file,
    read_connection_file,
    remove_connection_file,
    write_connection_file,
)
from .envelope import (  # noqa: F401
    BAD_INPUT,
    BAD_SIGNATURE,
    BAD_VERSION,
    BUSY,
    INTERNAL,
    JOB_FAILED,
    JOB_FINISHED,
    MALFORMED,
    MAX_BUFFERS,
    MAX_HEADER_BYTES,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    SERVER_STOPPED,
    SIGNATURE_SCHEME,
    TOO_LARGE,
    UNKNOWN_JOB,
    UNKNOWN_TYPE,
    Message,
    ProtocolError,
    Session,
    decode,
    encode,
    error_message,
    new_id,
    new_key,
    parse_dtype,
    sign,
    wire_array,
)
from .messages import (  # noqa: F401
    INPUT_ARRAYS,
    MAX_ABS_VALUE,
    MAX_CLIP_FRAMES,
    MAX_FPS,
    MIN_FPS,
    NUM_CONTACTS,
    NUM_JOINTS,
    OPTION_DEFAULTS,
    MAX_SAMPLES,
    OPTIONAL_INPUTS,
    OPTIONAL_OUTPUTS,
    OUTPUT_ARRAYS,
    SAMPLE_ARRAYS,
    PRESETS,
    REPLY_TYPES,
    REQUEST_TYPES,
    check_options,
    check_output_arrays,
    check_submit,
    json_safe,
    submit_message,
)
