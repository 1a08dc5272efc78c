with model.generate("The Eiffel Tower is in the city of", max_new_tokens=2) as tracer:
    top = model.lm_head.output[0, -1].topk(3).indices.save()
    bad = model.lm_head.output[0, 3].save()
print(top)
