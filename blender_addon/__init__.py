"""DREAMoR for Blender: mark occluded bones, refine SMPL motion with the DREAMoR backend, preview contacts.

Two layers. The bpy-free core (NumPy only, tested in plain Python): ``conventions`` (armature naming,
the skeleton from ``dreamor_body/``), ``rotmath``, ``clipfile`` (the clip ``.npz``), ``posemath`` (pose
<-> clip arrays, merging a result). The bpy layer: ``armature_io`` (Blender data <-> arrays), ``marks``,
``refine`` (one Refine run), ``backend`` (the backend process and its link), ``operators``, ``panels``,
``overlay``, ``preferences``, wired up by ``registration``, which Blender reaches only through
:func:`register` (so importing this package does not import bpy).
"""


def register():
    from . import registration

    registration.register()


def unregister():
    from . import registration

    registration.unregister()
