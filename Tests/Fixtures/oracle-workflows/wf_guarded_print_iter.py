import nnsight
import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    hits = []
    for step in tracer.iter[0:4]:
        big = model.transformer.h[3].output[0][0, -1].norm() > 10
        top = model.lm_head.output[0, -1].argmax(-1)
        if big:
            print("big norm at", step, top)
            hits.append(step)
        else:
            print("small norm at", step)
    hits = nnsight.save(hits)
print(hits)
