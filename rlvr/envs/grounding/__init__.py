"""rlvr/Grounding-v0: multi-turn zoom-in visual grounding on high-resolution images (see :mod:`.env`)."""

from rlvr.envs.grounding.boxes import COORD_MODES, box_iou, from_view, parse_action, resolve_box, to_view
from rlvr.envs.grounding.env import GroundingEnv
from rlvr.envs.grounding.imaging import crop_view, open_image, smart_resize
from rlvr.envs.grounding.loaders import TASK_FORMATS, cycle_averaged_accuracy, load_tasks
from rlvr.envs.grounding.synthetic import SyntheticConfig, generate_tasks
from rlvr.envs.grounding.tasks import GroundingTask

__all__ = ["COORD_MODES", "TASK_FORMATS", "GroundingEnv", "GroundingTask", "SyntheticConfig", "box_iou",
           "crop_view", "cycle_averaged_accuracy", "from_view", "generate_tasks", "load_tasks", "open_image",
           "parse_action", "resolve_box", "smart_resize", "to_view"]
