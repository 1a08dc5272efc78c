import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    widths = [].save()
    for step in tracer.iter[0:3]:
        if step == 0:
            first = model.lm_head.output.save()
        widths.append(model.lm_head.output.shape[1])
        print(model.lm_head.output.shape, model.output.logits.shape)
print(widths, first.shape)
with model.trace("The Eiffel Tower is in the city of"):
    full = model.lm_head.output.save()
print(full.shape, torch.allclose(full[:, -1:], first, atol=1e-5))
