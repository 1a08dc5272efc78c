import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=8) as tracer:
    ents = [].save()
    for step in tracer.iter[:]:
        probs = model.lm_head.output[0, -1].softmax(-1)
        ent = -(probs * probs.log()).sum()
        ents.append(ent.item())
        if step >= 2:
            tracer.stop()
print(len(ents), [round(e, 3) for e in ents])
