import nnsight
import torch
from torch import nn
import torch.nn.functional as F
from nnsight import LanguageModel

with model.trace("The Eiffel Tower is in the city of") as tracer:
    logits = model.lm_head.output[0, -1]
    probs = F.softmax(logits, dim=-1)
    top = torch.topk(probs, 3)
    vals = top.values.save()
    idx = top.indices.save()
print(idx.tolist(), [round(v, 4) for v in vals.tolist()])
