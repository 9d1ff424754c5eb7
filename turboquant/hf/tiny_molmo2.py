"""A tiny, offline, seeded Molmo2: random weights from a config and a processor built in-process.

``build_tiny_molmo2()`` returns ``(model, processor)`` where ``model`` is transformers' own
``Molmo2ForConditionalGeneration`` (text decoder: 2 layers, head_dim 128, 4 query / 2 KV heads;
vision tower: 2 layers on 84×84 frames) and ``processor`` is transformers' own
``Molmo2Processor`` (prompt expansion into ``<frame_start><im_patch>…<frame_end>`` tokens with
timestamps, ``mm_token_type_ids`` for the bidirectional frame block) around:

* the offline byte-level tokenizer of :mod:`turboquant.hf.tiny` plus Molmo2's special tokens;
* :class:`TorchMolmo2VideoProcessor`, Molmo2's video preprocessing (square bilinear resize,
  normalization, 14-pixel patches, pooling windows) in plain torch, because transformers'
  ``Molmo2VideoProcessor`` needs torchvision. It produces the same ``pixel_values_videos``,
  ``video_token_pooling`` and ``video_grids``;
* :class:`NoImageProcessor`, a placeholder: the tiny model takes videos and text, not images.

So a real clip goes through the real Molmo2 path: frames (:func:`turboquant.video.load_video_frames`)
→ processor → vision tower → adapter → decoder. Needs a transformers with native Molmo2
(tested with 5.23; 5.17 lacks it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD
from transformers.video_processing_utils import VideoProcessorMixin

try:
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration, Molmo2Processor
except ImportError as e:  # pragma: no cover - depends on the installed transformers
    import transformers

    raise ImportError(
        "turboquant.hf.tiny_molmo2 needs a transformers with native Molmo2 (tested with 5.23), "
        f"found {transformers.__version__}"
    ) from e

from .tiny import build_offline_tokenizer

# Tokens Molmo2Processor looks up by name (image/video placeholders, patch and frame markers).
MOLMO2_SPECIAL_TOKENS = (
    "<|image|>",
    "<|video|>",
    "<im_patch>",
    "<im_col>",
    "<im_start>",
    "<low_res_im_start>",
    "<frame_start>",
    "<im_end>",
    "<frame_end>",
    "<im_low>",
)

# Role-tagged like turboquant.hf.tiny.CHAT_TEMPLATE; a video part becomes the <|video|>
# placeholder that Molmo2Processor expands into frame tokens.
MOLMO2_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}{{ '<|video|>' }}"
    "{% elif part['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

FRAME_SIZE = 84  # square input of the tiny vision tower: 6x6 patches of 14 pixels
PATCH_SIZE = 14
POOLING = (2, 2)  # 2x2 patch windows -> 3x3 = 9 tokens per frame


def _patches_and_pooling(video: torch.Tensor, size: int, patch: int, pool: tuple[int, int]):
    """``video`` uint8 ``[T, H, W, 3]`` → (``patches`` fp32 ``[T, (size/patch)**2, patch*patch*3]``,
    ``pooling`` int64 ``[rows*cols, pool_h*pool_w]`` patch indices of one frame, -1 = padding,
    ``rows``, ``cols``)."""
    from transformers.models.molmo2.video_processing_molmo2 import arange_for_pooling, batch_pixels_to_patches

    x = video.permute(0, 3, 1, 2).float()
    # Bilinear without antialias, rounded back to uint8 levels: what Molmo2VideoProcessor does.
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    x = x.round().clamp(0, 255) / 255.0
    mean = torch.tensor(IMAGENET_STANDARD_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STANDARD_STD).view(1, 3, 1, 1)
    x = ((x - mean) / std).permute(0, 2, 3, 1).contiguous()
    patches = batch_pixels_to_patches(x, patch)
    side = size // patch
    grid = torch.arange(side * side, dtype=torch.int64).reshape(side, side)
    pooling, rows, cols = arange_for_pooling(grid, *pool)
    return patches, pooling, rows, cols


class TorchMolmo2VideoProcessor(VideoProcessorMixin):
    """Molmo2's video preprocessing without torchvision.

    Takes videos as uint8 arrays/tensors ``[T, H, W, 3]`` (already sampled, e.g. by
    :func:`turboquant.video.load_video_frames`; pass ``do_sample_frames=False``) and returns
    ``pixel_values_videos`` fp32 ``[sum T, patches_per_frame, patch*patch*3]``,
    ``video_token_pooling`` int64 ``[sum T*rows*cols, pool_h*pool_w]`` (indices into the
    flattened patches of all videos, -1 = padding) and ``video_grids`` int64 ``[num_videos, 3]``
    (frames, rows, cols), plus ``video_metadata`` when ``return_metadata``.
    """

    model_input_names = ["pixel_values_videos", "video_token_pooling", "video_grids"]

    def __init__(
        self,
        size: int = FRAME_SIZE,
        patch_size: int = PATCH_SIZE,
        pooling_size: tuple[int, int] = POOLING,
        max_fps: float = 2.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if size % patch_size:
            raise ValueError(f"size: expected a multiple of patch_size={patch_size}, got {size}")
        self.frame_size, self.patch_size = size, patch_size
        self.pooling_size = tuple(pooling_size)
        self.max_fps = max_fps

    def preprocess(
        self,
        videos,
        video_metadata=None,
        do_sample_frames: bool | None = None,
        return_metadata: bool = False,
        return_tensors=None,
        **unused,
    ) -> BatchFeature:
        """Preprocess videos; other video kwargs the processor forwards are ignored (sizes are
        fixed by the tiny vision tower)."""
        from transformers.video_utils import VideoMetadata

        if do_sample_frames:
            raise ValueError(
                "do_sample_frames: this processor takes sampled frames (turboquant.video.load_video_frames); "
                "pass do_sample_frames=False"
            )
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
            videos = [videos]
        metadata = (
            video_metadata if isinstance(video_metadata, (list, tuple)) else [video_metadata] * len(videos)
        )
        if len(metadata) != len(videos):
            raise ValueError(f"video_metadata: expected one per video ({len(videos)}), got {len(metadata)}")
        crops, pooled, grids, offset = [], [], [], 0
        for video in videos:
            video = torch.as_tensor(np.asarray(video))
            if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8:
                raise ValueError(
                    f"videos: expected uint8 frames [T, H, W, 3], got {video.dtype} {tuple(video.shape)}"
                )
            patches, pooling, rows, cols = _patches_and_pooling(
                video, self.frame_size, self.patch_size, self.pooling_size
            )
            t, per_frame = patches.shape[:2]
            frame_offsets = (offset + torch.arange(t) * per_frame).view(-1, 1, 1)
            pooled.append(
                torch.where(pooling >= 0, pooling + frame_offsets, pooling).reshape(-1, pooling.shape[-1])
            )
            crops.append(patches)
            grids.append(torch.tensor([t, rows, cols], dtype=torch.int64))
            offset += t * per_frame
        data = {
            "pixel_values_videos": torch.cat(crops),
            "video_token_pooling": torch.cat(pooled),
            "video_grids": torch.stack(grids),
        }
        if return_metadata:
            data["video_metadata"] = [
                m if isinstance(m, VideoMetadata) else VideoMetadata(**(m or {"total_num_frames": len(v)}))
                for m, v in zip(metadata, videos, strict=True)
            ]
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=["video_metadata"])


class TinyMolmo2Processor(Molmo2Processor):
    """``Molmo2Processor`` that accepts :class:`TorchMolmo2VideoProcessor`: transformers looks
    the video processor base class up in a registry that is empty without torchvision."""

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and isinstance(argument, VideoProcessorMixin):
            return VideoProcessorMixin
        return super().check_argument_for_proper_class(argument_name, argument)


class NoImageProcessor(BaseImageProcessor):
    """Placeholder image processor: ``Molmo2Processor`` requires one; the tiny model takes video."""

    def preprocess(self, images, **kwargs):
        raise ValueError("images: the tiny Molmo2 takes videos and text only, not images")


def build_tiny_molmo2(seed: int = 0, dtype: torch.dtype = torch.bfloat16):
    """A tiny random Molmo2 and its offline processor: ``(model, processor)``.

    Text decoder: 2 layers, hidden 256, 4 query heads and 2 KV heads (GQA) of head_dim 128.
    Vision: 2 ViT layers of width 64 on 84×84 frames (6×6 patches of 14 pixels), pooled 2×2
    into 9 tokens per frame. Weights are drawn from ``seed`` without touching the global RNG;
    the model is in eval mode on CPU with SDPA attention, in ``dtype`` (bf16 by default, which
    the fused Triton kernels need). Generation never emits special tokens (they are
    suppressed, as are byte tokens that are not text on their own), so answers are readable
    text of exactly ``max_new_tokens`` tokens.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype: expected float32, float16 or bfloat16, got {dtype}")
    tokenizer = build_offline_tokenizer(extra_special_tokens=MOLMO2_SPECIAL_TOKENS)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in MOLMO2_SPECIAL_TOKENS}
    vision_width, heads = 64, 4
    config = Molmo2Config(
        text_config=dict(
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=128,
            vocab_size=len(tokenizer),
            additional_vocab_size=0,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        vision_config=dict(
            hidden_size=vision_width,
            intermediate_size=2 * vision_width,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            head_dim=vision_width // heads,
            image_size=[FRAME_SIZE, FRAME_SIZE],
            patch_size=PATCH_SIZE,
        ),
        adapter_config=dict(
            vision_feature_layer=[-1, 0],
            hidden_size=vision_width,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            head_dim=vision_width // heads,
            intermediate_size=2 * vision_width,
            text_hidden_size=256,
        ),
        image_start_token_id=ids["<im_start>"],
        low_res_image_start_token_id=ids["<low_res_im_start>"],
        image_end_token_id=ids["<im_end>"],
        image_patch_id=ids["<im_patch>"],
        frame_start_token_id=ids["<frame_start>"],
        frame_end_token_id=ids["<frame_end>"],
        # As the tiny Llama: a larger init than 0.02 makes greedy decoding decisive.
        initializer_range=0.1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Molmo2ForConditionalGeneration._from_config(config, attn_implementation="sdpa", dtype=dtype)
    model.eval()
    gen = model.generation_config
    gen.pad_token_id, gen.bos_token_id, gen.eos_token_id = (
        tokenizer.pad_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    # A random model would otherwise emit placeholders, end-of-text and stray UTF-8 fragments
    # (byte tokens that decode to U+FFFD alone) at random; answers stay readable text.
    fragments = {i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])}
    gen.suppress_tokens = sorted(set(tokenizer.all_special_ids) | fragments)
    processor = TinyMolmo2Processor(
        image_processor=NoImageProcessor(),
        video_processor=TorchMolmo2VideoProcessor(),
        tokenizer=tokenizer,
        chat_template=MOLMO2_CHAT_TEMPLATE,
    )
    return model, processor
