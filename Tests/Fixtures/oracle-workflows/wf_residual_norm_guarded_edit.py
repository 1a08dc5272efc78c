import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    log = [].save()
    for step in tracer.iter[0:3]:
        h = model.transformer.h[1].output[0]
        if h[0, -1].norm() > 5:
            h[:, -1] = h[:, -1] / h[0, -1].norm() * 5
            log.append(step)
            print("clipped at", step)
        else:
            print("kept at", step)
    out = tracer.result.save()
print(log, out[0, -3:].tolist())
