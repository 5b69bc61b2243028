"""The main job's stages: one module per question (what it reads, writes and which paper item it serves);
:mod:`npc_lib.stages.plan` lists them and :mod:`npc_lib.runner` schedules them."""
