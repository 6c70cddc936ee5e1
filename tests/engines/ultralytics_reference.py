"""An independent, torch-based transcription of Ultralytics' standard YOLO
post-processing (`ops.non_max_suppression`, `ops.process_mask_native`,
`ops.scale_boxes`, `ops.scale_coords`), used only as the parity reference in
tests. Written against Ultralytics 8.3 `ultralytics/utils/ops.py`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def xywh2xyxy(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, 0] = x[:, 0] - x[:, 2] / 2
    y[:, 1] = x[:, 1] - x[:, 3] / 2
    y[:, 2] = x[:, 0] + x[:, 2] / 2
    y[:, 3] = x[:, 1] + x[:, 3] / 2
    return y


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[:, :2])
    rb = torch.min(a[:, None, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    return inter / (area_a[:, None] + area_b - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thres: float) -> torch.Tensor:
    """torchvision.ops.nms semantics."""
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        if order.numel() == 1:
            break
        ious = box_iou(boxes[i][None], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_thres]
    return torch.tensor(keep, dtype=torch.long)


def non_max_suppression(pred, conf_thres=0.25, iou_thres=0.7, nc=80, yolov5=False, max_det=300):
    """Returns (n, 6 + extra): xyxy, conf, cls, extra (mask coefficients or keypoints)."""
    if yolov5:  # [1, A, 5+nc+nm]: objectness x class probability
        x = pred[0]
        x = x[x[:, 4] > conf_thres]
        x = torch.cat((x[:, :4], x[:, 5 : 5 + nc] * x[:, 4:5], x[:, 5 + nc :]), 1)
    else:  # [1, 4+nc+nm, A]
        x = pred[0].transpose(0, 1)
        x = x[x[:, 4 : 4 + nc].amax(1) > conf_thres]
    box, cls, extra = x[:, :4], x[:, 4 : 4 + nc], x[:, 4 + nc :]
    conf, j = cls.max(1, keepdim=True)
    x = torch.cat((xywh2xyxy(box), conf, j.float(), extra), 1)[conf.view(-1) > conf_thres]
    x = x[x[:, 4].argsort(descending=True)[:30000]]
    c = x[:, 5:6] * 7680
    i = nms(x[:, :4] + c, x[:, 4], iou_thres)[:max_det]
    return x[i]


def scale_boxes(img1_shape, boxes, img0_shape):
    gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
    pad = (round((img1_shape[1] - img0_shape[1] * gain) / 2 - 0.1), round((img1_shape[0] - img0_shape[0] * gain) / 2 - 0.1))
    boxes = boxes.clone()
    boxes[:, [0, 2]] -= pad[0]
    boxes[:, [1, 3]] -= pad[1]
    boxes /= gain
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, img0_shape[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, img0_shape[0])
    return boxes


def scale_coords(img1_shape, coords, img0_shape):
    gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
    pad = (round((img1_shape[1] - img0_shape[1] * gain) / 2 - 0.1), round((img1_shape[0] - img0_shape[0] * gain) / 2 - 0.1))
    coords = coords.clone()
    coords[..., 0] = ((coords[..., 0] - pad[0]) / gain).clamp(0, img0_shape[1])
    coords[..., 1] = ((coords[..., 1] - pad[1]) / gain).clamp(0, img0_shape[0])
    return coords


def scale_masks(masks, shape):
    mh, mw = masks.shape[2:]
    gain = min(mh / shape[0], mw / shape[1])
    pad = [mw - shape[1] * gain, mh - shape[0] * gain]
    pad[0] /= 2
    pad[1] /= 2
    top, left = int(pad[1]), int(pad[0])
    bottom, right = int(mh - pad[1]), int(mw - pad[0])
    masks = masks[..., top:bottom, left:right]
    return F.interpolate(masks, shape, mode="bilinear", align_corners=False)


def crop_mask(masks, boxes):
    _, h, w = masks.shape
    x1, y1, x2, y2 = torch.chunk(boxes[:, :, None], 4, 1)
    r = torch.arange(w, dtype=x1.dtype)[None, None, :]
    c = torch.arange(h, dtype=x1.dtype)[None, :, None]
    return masks * ((r >= x1) * (r < x2) * (c >= y1) * (c < y2))


def process_mask_native(protos, masks_in, bboxes, shape):
    c, mh, mw = protos.shape
    masks = (masks_in @ protos.float().view(c, -1)).view(-1, mh, mw)
    masks = scale_masks(masks[None], shape)[0]
    masks = crop_mask(masks, bboxes)
    return masks.gt_(0.0)
